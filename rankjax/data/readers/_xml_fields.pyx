# cython: language_level=3, boundscheck=False, wraparound=False
"""The fields of one parsed `<session>`, read from libxml2's tree in C (`xml_sessions`'s fast path).

In Python, reading a field means an lxml element object for every result, click and field, which
costs more than libxml2's parse of them; this walk reads the same texts and attributes straight from
the nodes lxml built (through lxml's public C API, struct fields only: nothing of libxml2 is
linked). It returns what `xml_sessions._SessionReader._fields` returns for a session, with None for
each element, or None for the whole session where a list would go to `_careful_results` or a field
would read differently (a rank that is not plain digits, a result without a document, an interaction
without results, a text that is not one plain node): the Python walk reads those sessions and counts
their skips at their lines. What else is to be skipped or repaired (a click, a query, a duplicate)
the records' own checks find (`xml_sessions._STRICT`).
"""

cimport lxml.includes.etreepublic as cetree
from libc.string cimport strcmp, strlen
from lxml.includes.tree cimport XML_ELEMENT_NODE, XML_TEXT_NODE, xmlAttr, xmlNode

cetree.import_lxml__etree()


class _Unusual(Exception):
    """Something in the session this walk leaves to the Python walk."""


cdef inline bint _named(xmlNode* node, const char* name) noexcept:
    """An element named `name` without a namespace (lxml's tag is then the bare name)."""
    return (
        node.type == XML_ELEMENT_NODE and node.ns is NULL
        and strcmp(<const char*>node.name, name) == 0
    )


cdef bint _is_doc_tag(xmlNode* node, list doc_tags):
    cdef bytes tag
    if node.type != XML_ELEMENT_NODE or node.ns is not NULL:
        return False
    for tag in doc_tags:
        if strcmp(<const char*>node.name, tag) == 0:
            return True
    return False


cdef const char* _text(xmlNode* el) except? NULL:
    """lxml's `el.text` as UTF-8 (NULL for None), where it is one text node or none."""
    cdef xmlNode* node = el.children
    if node is NULL or node.type == XML_ELEMENT_NODE:
        return NULL
    if node.type != XML_TEXT_NODE or (node.next is not NULL and node.next.type != XML_ELEMENT_NODE):
        raise _Unusual
    if node.content is NULL:
        return b""
    return <const char*>node.content


cdef inline bint _ascii_space(unsigned char c) noexcept:
    """The ASCII characters `str.isspace` holds to be whitespace."""
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


cdef str _stripped(const char* text):
    """`text.decode().strip()` (`""` for NULL): the ASCII whitespace is stripped here, in C, and
    Python's `strip` is called only where the text starts or ends with another character than
    ASCII (whitespace there is Unicode's to say)."""
    if text is NULL:
        return ""
    cdef Py_ssize_t start = 0, end = strlen(text)
    while start < end and _ascii_space(text[start]):
        start += 1
    while end > start and _ascii_space(text[end - 1]):
        end -= 1
    out = text[start:end].decode("utf-8")
    if start < end and (<unsigned char>text[start] >= 0x80 or <unsigned char>text[end - 1] >= 0x80):
        return out.strip()
    return out


cdef long long _count(const char* text, long long hi) except -1:
    """The integer in [1, hi] that `text` writes in plain ASCII digits (`record.parse_count`)."""
    cdef long long value = 0
    cdef Py_ssize_t i, n = strlen(text) if text is not NULL else 0
    if n == 0 or n > 18:
        raise _Unusual
    for i in range(n):
        if not c'0' <= text[i] <= c'9':
            raise _Unusual
        value = value * 10 + (text[i] - c'0')
    if not 1 <= value <= hi:
        raise _Unusual
    return value


cdef object _attribute(xmlNode* el, const char* name):
    """lxml's `el.get(name)`, where the value is one text node or none."""
    cdef const char* value = _attribute_text(el, name)
    return None if value is NULL else value.decode("utf-8")


cdef const char* _attribute_text(xmlNode* el, const char* name) except? NULL:
    cdef xmlAttr* attr = el.properties
    while attr is not NULL:
        if attr.ns is NULL and strcmp(<const char*>attr.name, name) == 0:
            if attr.children is NULL:
                return b""
            if attr.children.type != XML_TEXT_NODE or attr.children.next is not NULL:
                raise _Unusual
            if attr.children.content is NULL:
                return b""
            return <const char*>attr.children.content
        attr = attr.next
    return NULL


cdef tuple _click(xmlNode* item, list doc_tags):
    cdef xmlNode* field = item.children
    rank = doc = None
    while field is not NULL:
        if _named(field, "rank"):
            rank = _stripped(_text(field))
        elif _is_doc_tag(field, doc_tags):
            doc = _stripped(_text(field))
        field = field.next
    return None, rank, doc, _attribute(item, "starttime"), _attribute(item, "endtime")


cdef tuple _interaction(
    xmlNode* el, object topic, list doc_tags, const char* query_id_tag, long long max_rank
):
    cdef xmlNode* child = el.children
    cdef xmlNode* item
    cdef xmlNode* field
    cdef const char* doc
    cdef const char* title
    cdef const char* snippet
    query = query_id = None
    ranks, docs, texts, clicks = [], [], [], []
    while child is not NULL:
        if child.type == XML_ELEMENT_NODE:
            if _named(child, "query"):
                query = _stripped(_text(child))
            elif query_id_tag is not NULL and _named(child, query_id_tag):
                query_id = _stripped(_text(child))
            else:
                item = child.children
                while item is not NULL:
                    if _named(item, "result"):
                        doc = title = snippet = NULL
                        field = item.children
                        while field is not NULL:  # the last of a repeated field counts
                            if _is_doc_tag(field, doc_tags):
                                doc = _text(field)
                            elif _named(field, "title"):
                                title = _text(field)
                            elif _named(field, "snippet"):
                                snippet = _text(field)
                            field = field.next
                        ranks.append(_count(_attribute_text(item, "rank"), max_rank))
                        doc_id = _stripped(doc)
                        if not doc_id:
                            raise _Unusual
                        docs.append(doc_id)
                        title_text, snippet_text = _stripped(title), _stripped(snippet)
                        # `xml_sessions._doc_texts`
                        if title_text and snippet_text:
                            texts.append(title_text + " " + snippet_text)
                        else:
                            texts.append(title_text or snippet_text)
                    elif _named(item, "click"):
                        clicks.append(_click(item, doc_tags))
                    item = item.next
        child = child.next
    if not docs:
        raise _Unusual
    return None, topic, query, query_id, ranks, docs, texts, clicks


def session_fields(
    cetree._Element session, tuple doc_tags, str query_id_tag, long long max_rank
):
    """Each interaction's fields in `session` as `_SessionReader._fields` returns them, with None
    for each element, or None where the Python walk is to read the session."""
    cdef xmlNode* child = session._c_node.children
    cdef list tags = [tag.encode() for tag in doc_tags]
    cdef bytes qid_tag = query_id_tag.encode() if query_id_tag is not None else None
    cdef const char* qid = NULL
    if qid_tag is not None:
        qid = qid_tag
    topic = None
    interactions = []
    try:
        while child is not NULL:
            if _named(child, "interaction"):
                interactions.append(_interaction(child, topic, tags, qid, max_rank))
            elif _named(child, "topic"):
                topic = _attribute(child, "num")
            child = child.next
    except _Unusual:
        return None
    return interactions
