"""Guidebook `description_html` cleaned with nh3 to the reference's allowed tags and attributes."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

import nh3

__all__ = ["Sanitized", "sanitize_description"]

# Reference guidebook.md "HTML text rules". `img` has an allowed attribute but is missing
# from the allowed tags; the stricter reading wins, so images are removed.
ALLOWED_TAGS = frozenset(
    {f"h{n}" for n in range(1, 9)}
    | {
        "a",
        "p",
        "div",
        "blockquote",
        "pre",
        "span",
        "b",
        "u",
        "i",
        "strong",
        "em",
        "tt",
        "code",
        "ins",
        "del",
        "sup",
        "sub",
        "kbd",
        "samp",
        "q",
        "var",
        "ol",
        "ul",
        "li",
        "dl",
        "dt",
        "dd",
        "table",
        "thead",
        "tbody",
        "tfoot",
        "tr",
        "td",
        "th",
        "br",
        "hr",
        "ruby",
        "rt",
        "rp",
    }
)
EVERY_TAG_ATTRIBUTES = frozenset(
    {
        "align",
        "alt",
        "border",
        "colspan",
        "rowspan",
        "title",
        "width",
        "height",
        "lang",
        "dir",
        "name",
        "target",
        "rel",
        "type",
        "value",
        "itemprop",
    }
)
TAG_ATTRIBUTES = {"a": {"href"}, "div": {"itemscope", "itemtype"}}
# Removed together with their content, as text inside them is code, not prose.
CONTENT_TAGS = frozenset({"script", "style"})


@dataclass(frozen=True)
class Sanitized:
    html: str
    # True when a tag, attribute, URL or style was removed (markup normalisation is not).
    removed: bool


def _attributes(extra: dict[str, set[str]], span_style: bool) -> dict[str, set[str]]:
    allowed: dict[str, set[str]] = {"*": set(EVERY_TAG_ATTRIBUTES)}
    for tag, names in (*TAG_ATTRIBUTES.items(), *extra.items()):
        # nh3 panics when a content tag also has attributes allowed.
        if tag not in CONTENT_TAGS:
            allowed.setdefault(tag, set()).update(names)
    if span_style:
        allowed.setdefault("span", set()).add("style")
    return allowed


class _Inventory(HTMLParser):
    """Every tag and attribute an input uses, so a permissive clean can be compared."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: dict[str, set[str]] = {}
        self.style_properties: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.setdefault(tag, set()).update(name for name, _ in attrs)
        for name, value in attrs:
            if name == "style" and value:
                declarations = (part.partition(":")[0] for part in value.split(";"))
                self.style_properties.update(d.strip().lower() for d in declarations if d.strip())


_ANY_SCHEME = frozenset({"http", "https", "mailto", "tel", "ftp", "javascript", "data", "vbscript"})


def _clean(
    html: str,
    tags: set[str],
    attributes: dict[str, set[str]],
    *,
    style: bool,
    schemes: frozenset[str] | None = None,
) -> str:
    return nh3.clean(
        html,
        tags=tags - CONTENT_TAGS,
        clean_content_tags=set(CONTENT_TAGS),
        attributes=attributes,
        # `rel` is an allowed attribute; nh3 refuses to both allow it and set it.
        link_rel=None,
        filter_style_properties={"color"} if style else None,
        url_schemes=set(schemes) if schemes is not None else None,
    )


def sanitize_description(html: str, *, span_style: bool = False) -> Sanitized:
    """Clean `html`; `span_style` (API v1.1) keeps `span[style]` with its `color` only.

    Whether something was removed is told by comparing with a clean that allows everything
    the input uses: both normalise markup the same way, so only real removals differ.
    """
    strict = _clean(html, set(ALLOWED_TAGS), _attributes({}, span_style), style=span_style)
    inventory = _Inventory()
    inventory.feed(html)
    inventory.close()
    permissive = _clean(
        html,
        set(ALLOWED_TAGS) | inventory.tags,
        _attributes(inventory.attributes, False),
        style=span_style,
        schemes=_ANY_SCHEME,
    )
    removed = (
        strict != permissive
        or bool(inventory.tags & CONTENT_TAGS)
        or (span_style and bool(inventory.style_properties - {"color"}))
    )
    return Sanitized(strict, removed)
