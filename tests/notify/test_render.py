"""Customer notices say the right things, to the right customer, and never a full identifier."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from breach_facts import EXAMPLE_BREACH
from hypothesis import given, settings
from hypothesis import strategies as st

from notify.completeness import missing_elements
from notify.render import NoticeRenderer, RenderedNotice
from schemas.models import NoticeContext
from schemas.vocab import Category as C
from schemas.vocab import KeyKind as K
from schemas.vocab import Risk

# a support line without a link: the notice must not depend on one
BREACH = replace(EXAMPLE_BREACH, support_contact="3900 (appel gratuit)")
FULL_IBAN = "FR7630006000011234567890189"
FULL_PHONE = "+33612345678"

MIXES: dict[str, tuple[tuple[K, ...], tuple[C, ...]]] = {
    "iban+name": ((K.IBAN,), (C.IBAN, C.NAME)),
    "phone only": ((K.PHONE,), (C.PHONE,)),
    "email only": ((K.EMAIL,), (C.EMAIL,)),
    "everything": ((K.EMAIL, K.IBAN, K.PHONE), tuple(C)),
}

SEPA = {"fr": ["13 mois", "8 semaines", "prélèvement SEPA"], "en": ["13 months", "8 weeks", "SEPA"]}
SIM = {"fr": "SIM swap", "en": "SIM swap"}
TWO_FACTOR = {"fr": "double authentification", "en": "two-factor"}
FREE = {"fr": "Ces démarches sont gratuites.", "en": "These steps are free of charge."}
GENUINE = {"fr": "Nous ne vous demanderons jamais", "en": "We will never ask you"}
HEADINGS = {
    "fr": [
        "Ce qui s'est passé",
        "Vos données concernées",
        "Les risques pour vous",
        "Ce que nous avons fait",
        "Ce que vous pouvez faire, et ce que cela coûte",
        "Qui contacter",
        "Comment vérifier que ce message vient bien de nous",
    ],
    "en": [
        "What happened",
        "Which of your data are concerned",
        "What the risks are for you",
        "What we have done",
        "What you can do, and what it costs",
        "Who to contact",
        "How to check that this message really comes from us",
    ],
}


def make_ctx(mix: str = "iban+name", language: str = "fr", **changes: object) -> NoticeContext:
    matched, categories = MIXES[mix]
    ctx = NoticeContext(
        notice_id="a1b2c3d4e5f60718293a4b5c6d7e8f90",
        customer_id="C000042",
        language=language,
        first_name="Marie",
        last_name="Durand",
        email="marie.durand@example.org",
        matched_on=matched,
        categories=categories,
        risk=Risk.HIGH if K.IBAN in matched else Risk.MEDIUM,
        breach=BREACH,
        iban_hint="FR•• •••• 0189" if K.IBAN in matched else None,
        phone_hint="•• •• •• •• 78" if K.PHONE in matched else None,
    )
    return replace(ctx, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def renderer() -> NoticeRenderer:
    return NoticeRenderer()


def both(notice: RenderedNotice) -> list[str]:
    """The two bodies, the HTML with entities for apostrophes turned back for plain searches."""
    return [notice.text, notice.html.replace("&#39;", "'").replace("&#34;", '"')]


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("mix", list(MIXES))
def test_every_section_and_only_the_right_advice(
    renderer: NoticeRenderer, mix: str, language: str
) -> None:
    ctx = make_ctx(mix, language)
    notice = renderer.render(ctx)
    assert notice.language == language
    assert missing_elements(notice, ctx) == []
    has = set(ctx.categories) | {C(k.value) for k in ctx.matched_on}
    for body in both(notice):
        for heading in HEADINGS[language]:
            assert heading in body
        assert FREE[language] in body
        assert GENUINE[language] in body
        assert "cnil.fr" in body
        assert BREACH.dpo_contact in body and BREACH.support_contact in body
        assert all(s in body for s in SEPA[language]) == (C.IBAN in has)
        assert any(s in body for s in SEPA[language][:2]) == (C.IBAN in has)
        assert (SIM[language] in body) == (C.PHONE in has)
        assert (TWO_FACTOR[language] in body) == bool({C.EMAIL, C.PASSWORD} & has)
        assert ("FR•• •••• 0189" in body) == (C.IBAN in has)
        assert ("•• •• •• •• 78" in body) == (C.PHONE in has)
        # Never the customer's own e-mail address, nor the other language.
        assert ctx.email is not None and ctx.email not in body
    other = "en" if language == "fr" else "fr"
    assert HEADINGS[other][0] not in notice.text


@pytest.mark.parametrize(
    ("mix", "present", "absent"),
    [
        ("iban+name", ["coordonnées bancaires (IBAN)", "vos nom et prénom"], ["mot de passe :"]),
        ("phone only", ["votre numéro de téléphone"], ["IBAN)", "votre adresse e-mail"]),
        ("email only", ["votre adresse e-mail"], ["IBAN)", "votre numéro de téléphone :"]),
    ],
)
def test_lists_only_the_customers_own_categories(
    renderer: NoticeRenderer, mix: str, present: list[str], absent: list[str]
) -> None:
    notice = renderer.render(make_ctx(mix))
    section = notice.text.split("2. Vos données concernées")[1].split("3. ")[0]
    for word in present:
        assert word in section
    for word in absent:
        assert word not in section


def test_every_category_has_words_in_both_languages(renderer: NoticeRenderer) -> None:
    for language in ("fr", "en"):
        notice = renderer.render(make_ctx("everything", language))
        items = notice.text.split("\n2. ")[1].split("\n3. ")[0]
        assert items.count("\n- ") == len(C)


def test_phone_only_match_warns_about_recycled_numbers(renderer: NoticeRenderer) -> None:
    assert "réattribués" in renderer.render(make_ctx("phone only")).text
    assert "réattribués" not in renderer.render(make_ctx("everything")).text


def test_high_risk_adds_an_urgent_line(renderer: NoticeRenderer) -> None:
    high = renderer.render(make_ctx("iban+name", risk=Risk.HIGH))
    low = renderer.render(make_ctx("iban+name", risk=Risk.LOW))
    assert "dès maintenant" in high.text and 'data-lw="urgent"' in high.html
    assert "dès maintenant" not in low.text and 'data-lw="urgent"' not in low.html


def test_french_by_default_english_on_request(renderer: NoticeRenderer) -> None:
    assert renderer.render(make_ctx(language="de")).language == "fr"
    assert renderer.render(make_ctx(language="")).subject.startswith("Information importante")
    assert renderer.render(make_ctx(language="en")).subject == "Important: your personal data"


def test_salutation_by_name_or_generic(renderer: NoticeRenderer) -> None:
    assert renderer.render(make_ctx()).text.startswith("Bonjour Marie Durand,\n")
    anonymous = renderer.render(make_ctx(first_name=None, last_name="  "))
    assert anonymous.text.startswith("Bonjour,\n")
    assert renderer.render(
        make_ctx(language="en", first_name=None, last_name=None)
    ).text.startswith("Dear customer,\n")


def test_names_are_escaped_in_html_and_kept_in_text(renderer: NoticeRenderer) -> None:
    ctx = make_ctx(first_name="<script>alert('x')</script>", last_name="O'Hara & Co")
    notice = renderer.render(ctx)
    assert "<script" not in notice.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; O&#39;Hara &amp; Co" in notice.html
    assert "<script>alert('x')</script> O'Hara & Co" in notice.text
    assert missing_elements(notice, ctx) == []


def test_operator_text_is_escaped_in_html(renderer: NoticeRenderer) -> None:
    breach = replace(BREACH, operator_name="Op <b>&</b>", summary_fr="<img src=x>")
    notice = renderer.render(make_ctx(breach=breach))
    assert "Op &lt;b&gt;&amp;&lt;/b&gt;" in notice.html and "<b>" not in notice.html
    assert "&lt;img src=x&gt;" in notice.html


@pytest.mark.parametrize(
    "changes",
    [
        {"first_name": FULL_IBAN},
        {"last_name": f"Durand {FULL_PHONE}"},
        {"first_name": "06 12 34 56 78"},
        {"last_name": "marie.durand@example.org"},
        {"iban_hint": FULL_IBAN},
        {"iban_hint": "FR76 3000 6000 0112 3456 7890 189"},
        {"phone_hint": FULL_PHONE},
        {"phone_hint": "06.12.34.56.78"},
    ],
)
def test_no_full_identifier_even_when_passed_in(
    renderer: NoticeRenderer, changes: dict[str, str]
) -> None:
    ctx = make_ctx("everything", **changes)
    notice = renderer.render(ctx)
    for body in (notice.text, notice.html, notice.subject):
        assert FULL_IBAN not in body and "FR76 3000" not in body
        assert FULL_PHONE not in body and "12 34 56" not in body and "12.34.56" not in body
        assert "marie.durand@" not in body
    assert missing_elements(notice, ctx) == []
    if "iban_hint" in changes:
        assert "FR•• •••• 0189" in notice.text
    if "phone_hint" in changes:
        assert "•• •• •• •• 78" in notice.text


def test_no_link_in_html(renderer: NoticeRenderer) -> None:
    html = renderer.render(make_ctx("everything")).html.lower()
    for mark in ("<a ", "href", "src=", "<form", "<script", "://"):
        assert mark not in html


def test_shapes_do_not_leak_between_customers(renderer: NoticeRenderer) -> None:
    a = renderer.render(make_ctx(first_name="Alice", notice_id="n1", iban_hint="FR•• •••• 1111"))
    b = renderer.render(make_ctx(first_name="Bruno", notice_id="n2", iban_hint="FR•• •••• 2222"))
    fresh = NoticeRenderer().render(
        make_ctx(first_name="Bruno", notice_id="n2", iban_hint="FR•• •••• 2222")
    )
    assert "Alice" in a.text and "1111" in a.html and "n1" in a.text
    assert "Alice" not in b.text + b.html and "1111" not in b.text + b.html
    assert b == fresh


RENDERER = NoticeRenderer()  # hypothesis runs many examples per test: one renderer for all


@settings(max_examples=60, deadline=None)
@given(
    first=st.one_of(st.none(), st.text(max_size=30)),
    last=st.one_of(st.none(), st.text(max_size=30)),
    mix=st.sampled_from(list(MIXES)),
    language=st.sampled_from(["fr", "en"]),
)
def test_any_name_gives_a_complete_notice(
    first: str | None, last: str | None, mix: str, language: str
) -> None:
    ctx = make_ctx(mix, language, first_name=first, last_name=last)
    notice = RENDERER.render(ctx)
    assert missing_elements(notice, ctx) == []
    assert "\ue000" not in notice.text and "\ue000" not in notice.html
    assert notice.text.count("\n") == RENDERER.render(
        replace(ctx, first_name="X", last_name=None)
    ).text.count("\n")


def test_rendering_speed(renderer: NoticeRenderer) -> None:
    """Not a benchmark: prints a rough rate so a slowdown is visible in the test log."""
    mixes = list(MIXES)
    contexts = [
        make_ctx(
            mixes[i % 4],
            "en" if i % 5 == 0 else "fr",
            notice_id=f"{i:032x}",
            first_name=("Alice", "Bruno", "Chloé")[i % 3],
        )
        for i in range(10_000)
    ]
    start = time.perf_counter()
    for ctx in contexts:
        renderer.render(ctx)
    elapsed = time.perf_counter() - start
    print(
        f"\nrendered {len(contexts)} notices in {elapsed:.2f} s: {len(contexts) / elapsed:,.0f}/s"
    )


@given(st.text(max_size=40))
def test_control_stripping_fast_path_agrees(value: str) -> None:
    import unicodedata

    from notify.render import _strip_controls

    slow = "".join(ch for ch in value if not unicodedata.category(ch).startswith("C"))
    assert _strip_controls(value) == slow


@given(st.text())
def test_a_name_without_digit_or_at_sign_is_its_own_redaction(value: str) -> None:
    """_safe_name relies on it: every shape core.redact replaces holds a digit or an "@"."""
    from core.redact import redact

    if "@" in value or any(map(str.isdigit, value)):
        return
    assert redact(value) == value


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_the_digit_fast_path_agrees(value: str) -> None:
    from notify.render import _has_digit

    assert _has_digit(value) == any(map(str.isdigit, value))


def test_no_letter_is_a_digit() -> None:
    """What _has_digit's fast path stands on, over every code point."""
    import sys

    assert not [c for c in range(sys.maxunicode + 1) if chr(c).isalpha() and chr(c).isdigit()]


@pytest.mark.parametrize(
    ("values", "plain"),
    [
        ({"name": "Marie Durand", "reference": "a1b2c3d4e5f60718293a4b5c6d7e8f90"}, True),
        ({"name": "Marie O'Hara", "reference": "a1b2c3d4e5f60718293a4b5c6d7e8f90"}, False),
        ({"name": "Jo", "reference": "x & <y>"}, False),
        ({}, True),
    ],
)
def test_a_filled_notice_carries_its_values_escaped(
    renderer: NoticeRenderer, values: dict[str, str], plain: bool
) -> None:
    from markupsafe import escape

    from notify.render import FilledNotice

    shape = renderer.fill(make_ctx("email only")).shape  # slots: name and reference
    filled = FilledNotice("n1", "fr", "s", shape, values)
    assert dict(filled.escaped) == {k: str(escape(v)) for k, v in values.items()}
    assert (filled.escaped is filled.fills) == plain
    with pytest.raises(TypeError):
        filled.escaped["name"] = "x"  # type: ignore[index]
    if values:
        html = filled.rendered().html
        assert str(escape(values["name"])) in html and str(escape(values["reference"])) in html
        values["name"] = "<b>changed</b>"  # a copy was kept, and escaped from it
        assert filled.escaped["name"] != "<b>changed</b>"
        assert filled.rendered().html == html


def test_the_layouts_are_compiled_before_the_first_render() -> None:
    """A renderer built before forking hands the workers layouts already compiled."""
    renderer = NoticeRenderer()
    env = renderer._env
    compiled: list[str | None] = []
    compile_ = env.compile

    def counting(source: str, name: str | None = None, *args: object, **kwargs: object) -> object:
        compiled.append(name)
        return compile_(source, name, *args, **kwargs)  # type: ignore[arg-type]

    env.compile = counting  # type: ignore[method-assign]
    for language in ("fr", "en"):
        renderer.fill(make_ctx(language=language))
    assert compiled == []


def test_the_checks_read_the_words_a_renderer_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a renderer is built, the checks' words need no compiling of their own."""
    import notify.render as render

    monkeypatch.setattr(render, "_wordings", {})
    renderer = NoticeRenderer()
    built: list[object] = []
    monkeypatch.setattr(render, "build_environment", lambda: built.append(1))
    for language in ("fr", "en"):
        assert render.wording(language) is renderer._wording[language]
    assert built == []


def test_the_checks_compile_their_words_once_without_a_renderer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import notify.render as render

    monkeypatch.setattr(render, "_wordings", {})
    first = render.wording("en")
    assert render.wording("en") is first
    assert first.language == "en"
    assert NoticeRenderer()._wording["en"] is first


@given(st.dictionaries(st.sampled_from(["name", "reference", "iban_hint"]), st.text(max_size=12)))
def test_escaped_values_are_markupsafes_and_the_same_object_when_nothing_changes(
    values: dict[str, str],
) -> None:
    from markupsafe import escape

    from notify.render import escaped_values, html_escaped

    expected = {k: str(escape(v)) for k, v in values.items()}
    assert {k: html_escaped(v) for k, v in values.items()} == expected
    escaped = escaped_values(values)
    assert dict(escaped) == expected
    assert (escaped is values) == (expected == values)
