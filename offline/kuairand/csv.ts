/** Minimal CSV/TSV line splitting with RFC 4180 quotes (enough for KuaiRand's files). */

/** Splits one line on `sep`, honouring double-quoted fields ("" inside quotes is a quote). */
export function splitCsvLine(line: string, sep = ','): string[] {
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quoted) {
      if (ch === '"') {
        if (line[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === sep) {
      out.push(field);
      field = '';
    } else field += ch;
  }
  out.push(field);
  return out;
}

/** Parses a whole delimited text into header-keyed rows (trailing \r stripped, blank lines skipped). */
export function parseTable(text: string, sep = ','): Record<string, string>[] {
  const lines = text.split('\n');
  const header = splitCsvLine((lines[0] ?? '').replace(/\r$/, ''), sep);
  const rows: Record<string, string>[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = (lines[i] as string).replace(/\r$/, '');
    if (line.length === 0) continue;
    const cells = splitCsvLine(line, sep);
    const row: Record<string, string> = {};
    header.forEach((h, j) => {
      row[h] = cells[j] ?? '';
    });
    rows.push(row);
  }
  return rows;
}
