"""The XMP packet of a sidecar as bytes with positions: parsed (expat, no DTD), its keyword lists found,
and edits that change those lists and nothing else (``mmcli.xmp.keywords`` decides what changes).

Every element is known by its byte span, so an edit is a replacement of a few bytes: items inserted
where a list ends, set out like their neighbours; items taken out with the whitespace before them; a
new ``rdf:Description`` at the end of ``rdf:RDF`` for a list the sidecar lacks. Namespaces are resolved
from the declarations in scope, whatever prefixes the file uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.parsers import expat
from xml.sax.saxutils import escape

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
META = "adobe:ns:meta/"
DC = "http://purl.org/dc/elements/1.1/"
LR = "http://ns.adobe.com/lightroom/1.0/"
SUBJECT, HIERARCHICAL = (DC, "subject"), (LR, "hierarchicalSubject")


class Skip(Exception):
    """This sidecar is not one to edit; the message says why."""


# ------------------------------------------------------------------------------ the packet read
@dataclass(eq=False)
class Node:
    """An element of the sidecar with its byte positions: ``start`` (its ``<``), ``inner`` (after its
    start tag), ``close`` (its end tag's ``<``; None for an empty element), ``end`` (after it all)."""

    qname: str
    ns: str
    local: str
    start: int
    inner: int
    scope: dict[str, str]
    attributes: dict[str, str]
    parent: Node | None = None
    close: int | None = None
    end: int = 0
    text: str = ""
    children: list[Node] = field(default_factory=list)

    def find(self, ns: str, local: str) -> list[Node]:
        return [c for c in self.children if c.ns == ns and c.local == local]


def _tag_end(data: bytes, at: int) -> int:
    """The offset after the ``>`` closing the tag that starts at ``at`` (quotes respected)."""
    quote = None
    for i in range(at + 1, len(data)):
        c = data[i : i + 1]
        if quote is not None:
            quote = None if c == quote else quote
        elif c in (b'"', b"'"):
            quote = c
        elif c == b">":
            return i + 1
    raise Skip("not XML (a tag is not closed)")


def parse(data: bytes) -> Node:
    """The element tree of ``data`` with byte positions; ``Skip`` when it is not XML one may edit."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\0" in data[:4]:
        raise Skip("not UTF-8 (an XMP sidecar other tools write is UTF-8)")
    parser = expat.ParserCreate("utf-8")
    parser.buffer_text = True
    stack: list[Node] = []
    root: list[Node] = []

    def refuse(*_: object) -> None:
        raise Skip("has a DTD (an XMP sidecar has none)")

    def begin(qname: str, attributes: dict[str, str]) -> None:
        parent = stack[-1] if stack else None
        scope = dict(parent.scope) if parent else {"xml": "http://www.w3.org/XML/1998/namespace"}
        for name, value in attributes.items():
            if name == "xmlns" or name.startswith("xmlns:"):
                scope[name[6:]] = value
        prefix, _, local = qname.rpartition(":")
        start = parser.CurrentByteIndex
        inner = _tag_end(data, start)
        node = Node(qname, scope.get(prefix, ""), local, start, inner, scope, attributes, parent)
        (parent.children if parent else root).append(node)
        stack.append(node)

    def finish(_qname: str) -> None:
        node = stack.pop()
        if data[: node.inner].rstrip(b" \t\r\n>").endswith(b"/"):  # an empty element: <x/>
            node.end = node.inner
        else:
            node.close = parser.CurrentByteIndex
            node.end = _tag_end(data, node.close)

    def chars(text: str) -> None:
        if stack:
            stack[-1].text += text

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = begin
    parser.EndElementHandler = finish
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise Skip(f"not XML ({expat.ErrorString(exc.code)}, line {exc.lineno})") from None
    return root[0]


def rdf_of(root: Node) -> Node:
    if root.ns == RDF and root.local == "RDF":
        return root
    if root.ns == META and root.local in ("xmpmeta", "xapmeta"):
        found = root.find(RDF, "RDF")
        if len(found) == 1:
            return found[0]
    raise Skip("not XMP (no x:xmpmeta with one rdf:RDF in it)")


@dataclass(eq=False)
class Listing:
    """One of our two properties in a sidecar: its list (``rdf:Bag``/``rdf:Seq``) and items."""

    container: Node | None  # None: the property is not there
    items: list[Node]

    @property
    def texts(self) -> list[str]:
        return [i.text for i in self.items if not i.children]


def find_list(rdf: Node, key: tuple[str, str]) -> Listing:
    found: list[Node] = []
    for description in rdf.find(RDF, "Description"):
        if any(description.scope.get(n.rpartition(":")[0]) == key[0] and n.endswith(":" + key[1])
               for n in description.attributes):  # fmt: skip
            raise Skip(f"holds {key[1]} as an attribute, not a list")
        found += description.find(*key)
    if not found:
        return Listing(None, [])
    lists = [c for c in found[0].children if c.ns == RDF and c.local in ("Bag", "Seq")]
    if len(found) > 1 or len(lists) != 1 or len(found[0].children) != 1:
        raise Skip(f"holds {key[1]} in a form other than one list")
    return Listing(lists[0], lists[0].find(RDF, "li"))


# ------------------------------------------------------------------------------ the edit
Edit = tuple[int, int, bytes]  # data[start:end] replaced by the bytes
STEP = " "  # one level of indentation (as exiftool and Exiv2 write)


def _indent(data: bytes, at: int) -> str:
    """The whitespace between the start of ``at``'s line and ``at``, when only whitespace stands there."""
    line = data.rfind(b"\n", 0, at) + 1
    lead = data[line:at]
    return lead.decode() if not lead.strip() else ""


def _newline(data: bytes) -> str:
    """The file's line break ("" for a packet on one line)."""
    return "\r\n" if b"\r\n" in data else "\n" if b"\n" in data else ""


def _gap_start(data: bytes, at: int, floor: int) -> int:
    """Where the whitespace before ``at`` starts (not before ``floor``)."""
    return max(len(data[:at].rstrip(b" \t\r\n")), floor)


def _li(prefix: str, text: str) -> str:
    tag = f"{prefix}:li" if prefix else "li"  # (rdf:RDF as the default namespace: unprefixed)
    return f"<{tag}>{escape(text)}</{tag}>"


def _open_tag(data: bytes, node: Node) -> bytes:
    """The start tag of an empty element (``<rdf:Bag/>``) as an opening one (``<rdf:Bag>``)."""
    return data[node.start : node.inner - 1].rstrip().rstrip(b"/").rstrip() + b">"


def add_items(data: bytes, listing: Listing, texts: Sequence[str], gone: set[int]) -> list[Edit]:
    """``texts`` put at the end of ``listing``'s list, set out like its items."""
    bag = listing.container
    assert bag is not None
    prefix = bag.qname.rpartition(":")[0]
    kept = [i for i in listing.items if id(i) not in gone]
    if kept:  # after the last item kept, with the whitespace that stands before it
        last = kept[-1]
        gap = data[_gap_start(data, last.start, 0) : last.start].decode()
        sep = (_newline(data) + _indent(data, last.start)) if "\n" in gap else gap
        return [(last.end, last.end, "".join(sep + _li(prefix, t) for t in texts).encode())]
    nl = _newline(data)
    own = _indent(data, bag.start)
    sep = nl + own + STEP if nl else ""
    items = "".join(sep + _li(prefix, t) for t in texts)
    if bag.close is None:  # <rdf:Bag/>: opened, filled, closed
        closing = (nl + own if nl else "") + f"</{bag.qname}>"
        return [(bag.start, bag.end, _open_tag(data, bag) + (items + closing).encode())]
    closing = nl + own if nl and not data[bag.inner : bag.close].strip(b" \t") else ""
    return [(bag.inner, bag.inner, (items + closing).encode())]


def remove_items(data: bytes, listing: Listing, texts: set[str]) -> tuple[list[Edit], set[int]]:
    """Edits that take the items ``texts`` (and the whitespace before each) out of ``listing``."""
    edits, gone = [], set()
    bag = listing.container
    for item in listing.items:
        if bag is not None and not item.children and item.text in texts:
            edits.append((_gap_start(data, item.start, bag.inner), item.end, b""))
            gone.add(id(item))
    return edits, gone


def remove_property(data: bytes, listing: Listing) -> list[Edit]:
    """The property of a list left empty, taken out whole (with the whitespace before it): an empty
    list would still be there, and some readers take its whitespace for an item."""
    prop = listing.container.parent if listing.container else None
    if prop is None or prop.parent is None:
        return []
    return [(_gap_start(data, prop.start, prop.parent.inner), prop.end, b"")]


def description(data: bytes, rdf: Node, missing: dict[tuple[str, str], list[str]]) -> list[Edit]:
    """An ``rdf:Description`` of its own for the properties the sidecar lacks, last in ``rdf:RDF``."""
    names = {DC: "dc", LR: "lr"}
    descriptions = rdf.find(RDF, "Description")
    about = ""
    for d in descriptions[:1]:
        about = next((v for k, v in d.attributes.items() if k.rpartition(":")[2] == "about"), "")
    nl = _newline(data)
    lines = bool(nl)
    ind = (_indent(data, descriptions[0].start) if descriptions else _indent(data, rdf.start) + STEP) if lines else ""
    step = STEP if lines else ""
    spaces = {ns for ns, _ in missing} | ({RDF} if rdf.scope.get("rdf") != RDF else set())
    declared = "".join(
        (f"{nl}{ind}    " if lines else " ") + f"xmlns:{names.get(ns, 'rdf')}={quote(ns)}"
        for ns in (RDF, DC, LR)
        if ns in spaces
    )
    body = ""
    for (ns, local), texts in missing.items():
        q = f"{names[ns]}:{local}"
        items = "".join(f"{nl}{ind}{step * 3}{_li('rdf', t)}" for t in texts)
        body += (
            f"{nl}{ind}{step}<{q}>{nl}{ind}{step * 2}<rdf:Bag>{items}{nl}{ind}{step * 2}</rdf:Bag>{nl}{ind}{step}</{q}>"
        )
    text = f"{nl}{ind}<rdf:Description rdf:about={quote(about)}{declared}>{body}{nl}{ind}</rdf:Description>"
    if rdf.close is None:  # <rdf:RDF/>
        closing = f"{nl}{_indent(data, rdf.start)}</{rdf.qname}>"
        return [(rdf.start, rdf.end, _open_tag(data, rdf) + (text + closing).encode())]
    at = _gap_start(data, rdf.close, rdf.inner)
    return [(at, at, text.encode())]


def quote(value: str) -> str:
    return '"' + escape(value, {'"': "&quot;"}) + '"'


def apply_edits(data: bytes, edits: list[Edit]) -> bytes:
    out, pos = [], 0
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1])):
        if start < pos:
            raise Skip("could not be edited safely (overlapping changes)")
        out += [data[pos:start], new]
        pos = end
    return b"".join([*out, data[pos:]])
