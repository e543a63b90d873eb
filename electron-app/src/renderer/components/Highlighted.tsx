/**
 * A search snippet with its matches marked. The text is rendered as React text
 * nodes (never as HTML), so nothing in a note can inject markup.
 */

interface HighlightedProps {
  text: string;
  /** [start, end) offsets in Unicode code points (the backend counts Python characters). */
  ranges: readonly (readonly [number, number])[];
}

export function Highlighted({ text, ranges }: HighlightedProps) {
  return (
    <>
      {splitByRanges(text, ranges).map((part, i) =>
        part.marked ? <mark key={i}>{part.text}</mark> : <span key={i}>{part.text}</span>,
      )}
    </>
  );
}

export interface TextPart {
  text: string;
  marked: boolean;
}

/** Split `text` into plain and marked parts; bad or overlapping ranges are clipped. */
export function splitByRanges(text: string, ranges: readonly (readonly [number, number])[]): TextPart[] {
  const chars = Array.from(text); // code points, like the backend's offsets
  const parts: TextPart[] = [];
  let position = 0;
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  for (const [rawStart, rawEnd] of sorted) {
    const start = Math.max(position, Math.min(rawStart, chars.length));
    const end = Math.max(start, Math.min(rawEnd, chars.length));
    if (end === start) {
      continue;
    }
    if (start > position) {
      parts.push({ text: chars.slice(position, start).join(""), marked: false });
    }
    parts.push({ text: chars.slice(start, end).join(""), marked: true });
    position = end;
  }
  if (position < chars.length) {
    parts.push({ text: chars.slice(position).join(""), marked: false });
  }
  return parts;
}
