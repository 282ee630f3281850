"""Splitting guideline documents into passages: on headings, then paragraphs, then sentences, with a size bound."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$")
_META = re.compile(r"^specialty:\s*(\S+)\s*$")
_SENTENCE_END = re.compile(r"(?<=[。！？；.!?;])")


@dataclass(frozen=True)
class Passage:
    id: str  # hash of source, metadata and text: re-ingesting the same content adds nothing twice
    text: str
    source: str
    title: str
    specialty: str
    chunk: int


def _pieces(text: str, max_chars: int, overlap: int) -> list[str]:
    """Paragraph-sized pieces no longer than max_chars; an over-long paragraph is cut at sentence ends, overlapping."""
    pieces: list[str] = []
    for paragraph in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not paragraph:
            continue
        if pieces and len(pieces[-1]) + len(paragraph) + 1 <= max_chars:
            pieces[-1] += "\n" + paragraph
            continue
        current = ""
        for sentence in filter(None, _SENTENCE_END.split(paragraph)):
            if current and len(current) + len(sentence) > max_chars:
                pieces.append(current)
                current = current[-overlap:] if overlap else ""
            current += sentence
            while len(current) > max_chars:  # a single sentence longer than the bound
                pieces.append(current[:max_chars])
                current = current[max_chars - overlap :]
        if current:
            pieces.append(current)
    return pieces


def split_document(
    text: str, source: str, *, max_chars: int = 500, overlap: int = 80, specialty: str = "other"
) -> list[Passage]:
    """Markdown or plain text -> passages, each prefixed with its section heading so it reads on its own."""
    title, heading = Path(source).stem, ""
    sections: list[tuple[str, str]] = []
    body: list[str] = []
    for line in text.splitlines():
        preamble = not sections and not "".join(body).strip()  # before any heading or text
        if (m := _HEADING.match(line)) and len(m.group(1)) == 1 and preamble:
            title = m.group(2)
        elif m := _HEADING.match(line):
            sections.append((heading, "\n".join(body)))
            heading, body = m.group(2), []
        elif (m := _META.match(line)) and preamble:
            specialty = m.group(1)
        else:
            body.append(line)
    sections.append((heading, "\n".join(body)))
    passages: list[Passage] = []
    for heading, section in sections:
        for piece in _pieces(section, max_chars, overlap):
            passage_text = f"【{heading}】{piece}" if heading else piece
            full_title = f"{title} › {heading}" if heading else title
            digest = hashlib.sha256(f"{source}\n{full_title}\n{specialty}\n{passage_text}".encode()).hexdigest()[:20]
            passages.append(Passage(digest, passage_text, source, full_title, specialty, len(passages)))
    return passages
