/**
 * Escaping and the small markdown-ish text format of reports.
 *
 * @module
 */

/**
 * Escapes `& < > " '` for HTML text and attribute values.
 *
 * @example
 * ```ts
 * import { escapeHtml } from "./html.ts";
 * escapeHtml(`<b title="x">&</b>`); // "&lt;b title=&quot;x&quot;&gt;&amp;&lt;/b&gt;"
 * ```
 */
export function escapeHtml(text: string): string {
  return String(text)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/**
 * JSON that can sit inside a `<script>` element: `<`, `>`, `&` and the line separators U+2028/9
 * are written as `\u` escapes, so no string in it can close the element (`</script>`) or open a
 * comment. `JSON.parse` reads it back unchanged.
 *
 * @example
 * ```ts
 * import { scriptJson } from "./html.ts";
 * scriptJson({ title: "</script>" }); // '{"title":"\\u003c/script\\u003e"}'
 * ```
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/**
 * Makes a script's text safe to inline in `<script>…</script>`: every `</script` becomes
 * `<\/script` (the same text inside JavaScript strings, regular expressions and comments).
 *
 * @example
 * ```ts
 * import { inlineScript } from "./html.ts";
 * inlineScript(`s = "</script>";`); // 's = "<\\/script>";'
 * ```
 */
export function inlineScript(js: string): string {
  return js.replace(/<\/(script)/gi, "<\\/$1");
}

function inline(text: string): string {
  // Escape first, then add the few inline forms; code spans are protected from the others.
  const codes: string[] = [];
  let s = escapeHtml(text).replace(/`([^`]+)`/g, (_, c: string) => {
    codes.push(`<code>${c}</code>`);
    return `\uE000${codes.length - 1}\uE001`;
  });
  s = s
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*\w])\*([^*\s][^*]*)\*(?!\w)/g, "$1<em>$2</em>")
    .replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g, '<a href="$2">$1</a>');
  return s.replace(/\uE000(\d+)\uE001/g, (_, i: string) => codes[Number(i)]);
}

/**
 * Renders markdown-ish text to HTML: paragraphs (blank-line separated), `#`/`##`/`###` headings,
 * `-`/`*` and `1.` lists, fenced code blocks, and inline `code`, **bold**, *italic* and
 * [links](https://…) (http and https only). Everything else is escaped, never interpreted as HTML.
 *
 * @example
 * ```ts
 * import { markdown } from "./html.ts";
 * markdown("# Result\nThe error is **small**: `1e-3`.\n\n- one\n- two");
 * ```
 */
export function markdown(text: string): string {
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  const out: string[] = [];
  let para: string[] = [];
  let list: { tag: "ul" | "ol"; items: string[] } | null = null;
  const flushPara = () => {
    if (para.length) out.push(`<p>${para.map(inline).join("<br>\n")}</p>`);
    para = [];
  };
  const flushList = () => {
    if (list) out.push(`<${list.tag}>${list.items.map((i) => `<li>${inline(i)}</li>`).join("")}</${list.tag}>`);
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^\s*```/.test(line)) {
      flushPara();
      flushList();
      const code: string[] = [];
      for (i++; i < lines.length && !/^\s*```/.test(lines[i]); i++) code.push(lines[i]);
      out.push(`<pre><code>${escapeHtml(code.join("\n"))}</code></pre>`);
      continue;
    }
    const heading = /^(#{1,3})\s+(.*)$/.exec(line);
    const bullet = /^\s*[-*]\s+(.*)$/.exec(line);
    const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
    if (heading) {
      flushPara();
      flushList();
      const level = heading[1].length + 2; // # → h3 (sections are h2)
      out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
    } else if (bullet || numbered) {
      flushPara();
      const tag = bullet ? "ul" : "ol";
      if (list && list.tag !== tag) flushList();
      list ??= { tag, items: [] };
      list.items.push((bullet ?? numbered)![1]);
    } else if (line.trim() === "") {
      flushPara();
      flushList();
    } else {
      flushList();
      para.push(line.trim());
    }
  }
  flushPara();
  flushList();
  return out.join("\n");
}
