"""A notice missing an art. 34(2) element, or showing a full identifier, is refused."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from breach_facts import EXAMPLE_BREACH
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import TerminalError
from notify.completeness import (
    CHECKS,
    ELEMENTS,
    IncompleteNoticeError,
    check_complete,
    missing_elements,
)
from notify.render import NoticeRenderer, RenderedNotice
from schemas.models import NoticeContext
from schemas.vocab import Category as C
from schemas.vocab import KeyKind as K
from schemas.vocab import Risk

BREACH = EXAMPLE_BREACH


def make_ctx(language: str = "fr") -> NoticeContext:
    return NoticeContext(
        notice_id="a1b2c3d4e5f60718293a4b5c6d7e8f90",
        customer_id="C000042",
        language=language,
        first_name="Marie",
        last_name="Durand",
        email="marie.durand@example.org",
        matched_on=(K.IBAN, K.PHONE),
        categories=(C.IBAN, C.NAME, C.PHONE, C.EMAIL),
        risk=Risk.HIGH,
        breach=BREACH,
        iban_hint="FR•• •••• 0189",
        phone_hint="•• •• •• •• 78",
    )


@pytest.fixture(scope="module")
def renderer() -> NoticeRenderer:
    return NoticeRenderer()


def drop_text_section(text: str, number: int) -> str:
    """The plain text without section ``number`` (its heading and body)."""
    return re.sub(rf"\n{number}\. .*?(?=\n{number + 1}\. |\n\w+,\n)", "\n", text, flags=re.S)


def drop_html_section(html: str, element: str) -> str:
    return re.sub(
        rf'<h2 data-lw="{element}".*?(?=<h2 |<p>Cordialement|<p>Kind)', "", html, flags=re.S
    )


def test_elements_are_the_art_34_list() -> None:
    assert ELEMENTS == (
        "what_happened",
        "your_data",
        "consequences",
        "operator_measures",
        "what_you_can_do",
        "cost",
        "contacts",
        "genuine_check",
    )
    assert set(CHECKS).isdisjoint(ELEMENTS)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_rendered_notice_is_complete(renderer: NoticeRenderer, language: str) -> None:
    ctx = make_ctx(language)
    notice = renderer.render(ctx)
    assert missing_elements(notice, ctx) == []
    check_complete(notice, ctx)  # operator's own phone number and URL are allowed


@pytest.mark.parametrize(
    ("number", "element"),
    [(1, "what_happened"), (2, "your_data"), (3, "consequences"), (4, "operator_measures"),
     (6, "contacts"), (7, "genuine_check")],
)  # fmt: skip
def test_dropping_a_text_section_is_refused(
    renderer: NoticeRenderer, number: int, element: str
) -> None:
    ctx = make_ctx()
    notice = renderer.render(ctx)
    broken = replace(notice, text=drop_text_section(notice.text, number))
    assert broken.text != notice.text
    with pytest.raises(IncompleteNoticeError) as caught:
        check_complete(broken, ctx)
    assert element in caught.value.missing
    assert notice.notice_id in str(caught.value)
    assert isinstance(caught.value, TerminalError)
    # Names the notice and the elements, never the customer.
    for personal in ("Marie", "Durand", "marie.durand", "0189"):
        assert personal not in str(caught.value)


@pytest.mark.parametrize(
    "element", ["what_happened", "your_data", "what_you_can_do", "genuine_check"]
)
def test_dropping_an_html_section_is_refused(renderer: NoticeRenderer, element: str) -> None:
    ctx = make_ctx()
    notice = renderer.render(ctx)
    broken = replace(notice, html=drop_html_section(notice.html, element))
    assert broken.html != notice.html
    assert element in missing_elements(broken, ctx)


def test_the_sepa_advice_and_cost_are_required_when_the_iban_leaked(
    renderer: NoticeRenderer,
) -> None:
    ctx = make_ctx()
    notice = renderer.render(ctx)
    no_deadline = replace(notice, text=notice.text.replace("13 mois", "quelques mois"))
    assert {"what_you_can_do", "sepa_deadlines"} <= set(missing_elements(no_deadline, ctx))
    not_free = replace(notice, html=notice.html.replace("Ces démarches sont gratuites.", ""))
    assert missing_elements(not_free, ctx) == ["cost"]


def test_the_hints_are_required_when_known(renderer: NoticeRenderer) -> None:
    ctx = make_ctx()
    notice = renderer.render(ctx)
    no_hint = replace(notice, text=notice.text.replace("FR•• •••• 0189", "FR"))
    assert "iban_hint" in missing_elements(no_hint, ctx)
    no_phone = replace(notice, html=notice.html.replace("•• •• •• •• 78", ""))
    assert "phone_hint" in missing_elements(no_phone, ctx)


@pytest.mark.parametrize(
    "leak",
    [
        "FR7630006000011234567890189",
        "FR76 3000 6000 0112 3456 7890 189",
        "+33 6 12 34 56 78",
        "06.12.34.56.78",
        "0612345678",
        "marie.durand@example.org",
    ],
)
@pytest.mark.parametrize("where", ["text", "html"])
def test_a_full_identifier_is_refused(renderer: NoticeRenderer, leak: str, where: str) -> None:
    ctx = make_ctx()
    notice = renderer.render(ctx)
    body = getattr(notice, where)
    leaked = replace(notice, **{where: body.replace("Marie Durand", f"Marie Durand {leak}")})
    assert missing_elements(leaked, ctx) == ["no_full_identifier"]


@pytest.mark.parametrize(
    ("where", "link"),
    [
        ("html", '<a href="https://evil.example/login">connectez-vous</a>'),
        ("html", "<img src=x>"),
        ("html", "<FORM action=x>"),
        ("text", "https://evil.example/login"),
        ("text", "www.evil.example"),
    ],
)
def test_a_link_is_refused(renderer: NoticeRenderer, where: str, link: str) -> None:
    ctx = make_ctx()
    notice = renderer.render(ctx)
    body = getattr(notice, where)
    linked = replace(notice, **{where: body.replace("Marie Durand", f"Marie Durand {link}")})
    assert "no_link" in missing_elements(linked, ctx)


def test_a_notice_for_another_customer_mix_is_refused(renderer: NoticeRenderer) -> None:
    """Words checked against this customer's own categories: a phone-only notice will not do."""
    ctx = make_ctx()
    phone_only = replace(ctx, matched_on=(K.PHONE,), categories=(C.PHONE,), iban_hint=None)
    wrong = renderer.render(phone_only)
    missing = missing_elements(wrong, ctx)
    assert {"your_data", "consequences", "what_you_can_do", "sepa_deadlines"} <= set(missing)


def test_empty_notice_misses_everything() -> None:
    ctx = make_ctx()
    empty = RenderedNotice(ctx.notice_id, "fr", "", "", "")
    assert missing_elements(empty, ctx)[: len(ELEMENTS)] == list(ELEMENTS)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_per_customer_defect_is_caught_on_the_shape_path(
    renderer: NoticeRenderer, language: str
) -> None:
    """The shape was checked already; a defect in one customer's values is still refused."""
    ctx = make_ctx(language)
    assert missing_elements(renderer.render(ctx), ctx) == []  # shape now checked and cached
    notice = renderer.render(ctx)
    assert notice.shape is not None and notice.fills is not None
    # A customer-filled gap holding a full phone number, built exactly as the renderer would.
    fills = {**notice.fills, "name": "Marie 0612345678"}
    text = "".join(p if i % 2 == 0 else fills[p] for i, p in enumerate(notice.shape.text))
    leaked = replace(notice, text=text, fills=fills)
    assert missing_elements(leaked, ctx) == ["no_full_identifier"]
    # A hint that is not this customer's.
    other = replace(ctx, iban_hint="FR•• •••• 9999")
    assert "iban_hint" in missing_elements(notice, other)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_shape_path_takes_only_the_renderers_own_strings(language: str) -> None:
    """A rendered notice is proven by identity; any copy or change goes to the full check."""
    from notify.completeness import _fast_complete
    from notify.render import _Built, as_built

    ctx = make_ctx(language)
    notice = NoticeRenderer().render(ctx)
    assert as_built(notice) is not None and _fast_complete(notice, ctx)
    equal_copy = replace(notice, text=notice.text.encode().decode())  # equal, another object
    rebuilt = replace(notice, text=notice.text[:5] + notice.text[5:])
    for other in (equal_copy, rebuilt, replace(notice, html=notice.html + " ")):
        if other.text is notice.text and other.html is notice.html:
            continue  # the interpreter shared the string: nothing to prove
        assert as_built(other) is None and not _fast_complete(other, ctx)
        assert missing_elements(other, ctx) == []  # the full check still passes it
    assert notice.fills is not None
    with pytest.raises(TypeError):
        notice.fills["name"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        _Built(object(), notice.shape, notice.fills, notice.text, notice.html)  # type: ignore[arg-type]


@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_value_the_renderer_lets_through_is_still_checked(language: str) -> None:
    """A name the renderer accepts (no digit, no @) but that forms a link is refused."""
    from notify.completeness import _fast_complete

    ctx = replace(make_ctx(language), first_name="Jean", last_name="www.phish")
    notice = NoticeRenderer().render(ctx)
    assert notice.fills is not None and notice.fills.get("name") == "Jean www.phish"
    assert not _fast_complete(notice, ctx)
    assert missing_elements(notice, ctx) == ["no_link"]


# --- The per-shape check of a notice not yet joined (notify.drafting's path) -------------------
FILLING = NoticeRenderer()  # hypothesis runs many examples: one renderer, shapes checked once
HOSTILE = [
    "www.", "://", "href", "<a", "src=", "@", "FR76", "1234567", "06 12 34 56 78", "Opérateur",
    "Exemple", "dpo", "3900", "\u00a0", "\u212a", "İ", " ", "-", ".", "'", "&", '"', ">", "é",
    "a1b2c3d4e5f60718293a4b5c6d7e8f90", "CNIL", "assistance.operateur.example", "(", ")",
]  # fmt: skip
BREACHES = [
    BREACH,
    replace(BREACH, support_contact="3900 (appel gratuit)", operator_name="Télé & Co <SA>"),
    replace(BREACH, summary_fr="Copie au 01 23 45 67 89 = fuite.", summary_en="Copied."),
]


def _hostile_names() -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=6)), max_size=6).map(
        "".join
    )


@settings(max_examples=300, deadline=None)
@given(
    first=st.one_of(st.none(), _hostile_names()),
    last=st.one_of(st.none(), _hostile_names()),
    language=st.sampled_from(["fr", "en"]),
    matched=st.sampled_from([(K.IBAN,), (K.PHONE,), (K.EMAIL,), (K.IBAN, K.PHONE)]),
    categories=st.lists(st.sampled_from(list(C)), min_size=1, max_size=4).map(tuple),
    iban_hint=st.sampled_from(["FR•• •••• 0189", "FR7630006000011234567890189", "DE•• •••• ABCD"]),
    phone_hint=st.sampled_from(["•• •• •• •• 78", "+33612345678", "06 12 34 56 00"]),
    breach=st.sampled_from(BREACHES),
)
def test_the_filled_check_refuses_exactly_what_the_full_check_refuses(
    first: str | None,
    last: str | None,
    language: str,
    matched: tuple[K, ...],
    categories: tuple[C, ...],
    iban_hint: str,
    phone_hint: str,
    breach: object,
) -> None:
    from notify.completeness import (
        _document_clean,
        _full_check,
        _quick,
        _quick_both,
        _shape_complete,
        _verdict,
        check_filled,
    )
    from notify.render import html_escaped

    ctx = replace(
        make_ctx(language), first_name=first, last_name=last, matched_on=matched,
        categories=categories, iban_hint=iban_hint, phone_hint=phone_hint, breach=breach,
    )  # fmt: skip
    filled = FILLING.fill(ctx)
    notice = filled.rendered()
    full = _full_check(notice, ctx)
    if _shape_complete(filled, ctx):
        assert full == []  # the shape path only ever skips work
    if full:
        with pytest.raises(IncompleteNoticeError) as caught:
            check_filled(filled, ctx)
        assert list(caught.value.missing) == full
    else:
        check_filled(filled, ctx)
    verdict = _verdict(filled.language, filled.subject, ctx, filled.shape)
    if verdict.ok:
        escaped = {k: html_escaped(v) for k, v in filled.fills.items()}
        assert dict(filled.escaped) == escaped
        exact_both = True
        for doc, document, values, html in (
            (notice.text, verdict.text, filled.fills, False),
            (notice.html, verdict.html, escaped, True),
        ):
            quick = _quick(document, values, filled.notice_id, html)
            exact = _document_clean(doc, document, values, filled.notice_id, html)
            assert quick is None or quick == exact  # judged from the values alone, or not at all
            exact_both = exact_both and exact
        if filled.escaped is filled.fills:
            both = _quick_both(verdict, filled.fills, filled.notice_id)
            assert both is None or both == exact_both  # both documents at once, or not at all


def test_a_filled_shape_missing_a_section_is_refused() -> None:
    from notify.completeness import check_filled
    from notify.render import FilledNotice, NoticeShape

    ctx = make_ctx()
    filled = FILLING.fill(ctx)
    shape = filled.shape
    # The same words without the consequences section in the text (it is all literal words).
    text = list(shape.text)
    for i in range(0, len(text), 2):
        text[i] = drop_text_section(text[i], 3)
    broken = FilledNotice(
        filled.notice_id, filled.language, filled.subject,
        NoticeShape(shape.key, tuple(text), shape.html), filled.fills,
    )  # fmt: skip
    with pytest.raises(IncompleteNoticeError) as caught:
        check_filled(broken, ctx)
    assert "consequences" in caught.value.missing


def test_a_per_customer_defect_is_caught_on_the_filled_path() -> None:
    from notify.completeness import check_filled
    from notify.render import FilledNotice

    ctx = make_ctx()
    filled = FILLING.fill(ctx)
    check_filled(filled, ctx)  # the shape is now checked and kept
    leaked = FilledNotice(
        filled.notice_id, filled.language, filled.subject, filled.shape,
        {**filled.fills, "name": "Marie 0612345678"},
    )  # fmt: skip
    with pytest.raises(IncompleteNoticeError) as caught:
        check_filled(leaked, ctx)
    assert caught.value.missing == ("no_full_identifier",)
    with pytest.raises(IncompleteNoticeError) as caught:
        check_filled(filled, replace(ctx, iban_hint="FR•• •••• 9999"))
    assert "iban_hint" in caught.value.missing
    values = {"name": "x"}
    kept = FilledNotice(filled.notice_id, "fr", filled.subject, filled.shape, values)
    values["name"] = "0612345678"  # a copy was kept: what is checked is what is written
    assert kept.fills["name"] == "x"


# Words around the name, and a name's ends, that together could make a mark, a URL or a tag.
_BEGUN = ["www", "WW", "w", "ht:/", "http:", ":", "hre", "HR", "h", "sr", "src ", "actio", "srcse"]
_ENDED = [".", "w.", "ww.", "//", "/", "f", "ef", "c=", "=", " =", "et", "set", "t", "ion="]


@settings(max_examples=500, deadline=None)
@given(
    before=st.sampled_from([*_BEGUN, "< ", "", "x"]),
    after=st.sampled_from([*_ENDED, "", "x"]),
    start=st.sampled_from([*_ENDED, ""]),
    middle=_hostile_names(),
    end=st.sampled_from([*_BEGUN, ""]),
    language=st.sampled_from(["fr", "en"]),
)
def test_a_value_next_to_part_of_a_mark_is_judged_exactly(
    before: str, after: str, start: str, middle: str, end: str, language: str
) -> None:
    """Where the words could join a value into a mark, the value is read with them: the shape
    path answers as the exact check does, or leaves the notice to it."""
    from notify.completeness import (
        _document_clean,
        _full_check,
        _joined,
        _quick_both,
        _shape_complete,
        _verdict,
    )
    from notify.render import FilledNotice, NoticeShape

    ctx = replace(make_ctx(language), first_name="Marie", last_name=None)
    filled = FILLING.fill(ctx)

    def edged(parts: tuple[str, ...]) -> tuple[str, ...]:
        out = list(parts)
        i = out.index("name")
        out[i - 1] += before
        out[i + 1] = after + out[i + 1]
        return tuple(out)

    shape = filled.shape
    other = NoticeShape(shape.key, edged(shape.text), edged(shape.html))
    # The name as given, even one the renderer would drop (digits, "@"): the check decides.
    name = start + middle + end
    edged_notice = FilledNotice(
        filled.notice_id, filled.language, filled.subject, other, {**filled.fills, "name": name}
    )
    if _shape_complete(edged_notice, ctx):
        assert _full_check(edged_notice.rendered(), ctx) == []
    verdict = _verdict(edged_notice.language, edged_notice.subject, ctx, other)
    if not verdict.ok or edged_notice.escaped is not edged_notice.fills:
        return
    values, notice_id = dict(edged_notice.fills), filled.notice_id  # the HTML's values too
    exact = all(
        _document_clean(_joined(document.parts, values), document, values, notice_id, html)
        for document, html in ((verdict.text, False), (verdict.html, True))
    )
    both = _quick_both(verdict, values, notice_id)
    assert both is None or both == exact


@given(st.text(alphabet="ab9_-\n \tzé", max_size=300))
def test_id_runs_line_by_line_are_the_words_runs(words: str) -> None:
    from notify.completeness import _ID_RUNS, _long_id_runs

    tokens = words.split()
    assert _long_id_runs(words) == tuple(
        run for token in tokens if len(token) >= 16 for run in _ID_RUNS.findall(token)
    )
