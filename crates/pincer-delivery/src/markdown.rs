//! Rendering an agent's Markdown to the HTML subset Telegram accepts with `parse_mode: "HTML"`.
//!
//! Telegram understands `<b> <i> <s> <u> <code> <pre> <a href> <blockquote>` and the entities
//! `&lt; &gt; &amp; &quot;`; everything else must be escaped. Headings become bold lines, list items
//! get `•` or their number, rules become a dash line, and raw HTML in the Markdown is shown as text.

use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

/// Renders Markdown to Telegram HTML (block structure kept with plain newlines).
pub fn to_telegram_html(markdown: &str) -> String {
    let mut r = Renderer::default();
    for event in Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH) {
        r.event(event);
    }
    r.out.truncate(r.out.trim_end().len());
    r.out
}

/// Escapes `&`, `<` and `>` for Telegram HTML text.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

fn escape_attr(text: &str) -> String {
    escape_html(text).replace('"', "&quot;")
}

#[derive(Default)]
struct Renderer {
    out: String,
    /// One entry per open list: the next number for ordered lists.
    lists: Vec<Option<u64>>,
    /// Set right after a list marker or `<blockquote>`, where a paragraph must not add a blank line.
    fresh: bool,
    /// Closing tag for the code block being rendered.
    code_close: Option<&'static str>,
    /// Closing tags of open links (`</a>`, or nothing for a link without a usable URL).
    links: Vec<&'static str>,
}

impl Renderer {
    /// Starts a block: a blank line after the previous one, except at the very start of an item.
    fn block(&mut self) {
        if std::mem::take(&mut self.fresh) || self.out.is_empty() {
            return;
        }
        let trimmed = self.out.trim_end_matches([' ', '\n']).len();
        self.out.truncate(trimmed);
        self.out.push_str(if self.lists.is_empty() { "\n\n" } else { "\n" });
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => {
                self.fresh = false;
                self.out.push_str(&escape_html(&text));
            }
            Event::Code(code) => {
                self.fresh = false;
                self.out.push_str("<code>");
                self.out.push_str(&escape_html(&code));
                self.out.push_str("</code>");
            }
            Event::Html(html) | Event::InlineHtml(html) => {
                self.fresh = false;
                self.out.push_str(&escape_html(&html));
            }
            Event::SoftBreak | Event::HardBreak => self.out.push('\n'),
            Event::Rule => {
                self.block();
                self.out.push_str("———");
            }
            Event::InlineMath(text) | Event::DisplayMath(text) | Event::FootnoteReference(text) => {
                self.out.push_str(&escape_html(&text));
            }
            Event::TaskListMarker(done) => self.out.push_str(if done { "☑ " } else { "☐ " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => self.block(),
            Tag::Heading { .. } => {
                self.block();
                self.out.push_str("<b>");
            }
            Tag::BlockQuote(_) => {
                self.block();
                self.out.push_str("<blockquote>");
                self.fresh = true;
            }
            Tag::CodeBlock(kind) => {
                self.block();
                let lang = match &kind {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next().unwrap_or(""),
                    CodeBlockKind::Indented => "",
                };
                if lang.is_empty() {
                    self.out.push_str("<pre>");
                    self.code_close = Some("</pre>");
                } else {
                    self.out.push_str(&format!("<pre><code class=\"language-{}\">", escape_attr(lang)));
                    self.code_close = Some("</code></pre>");
                }
            }
            Tag::List(first) => {
                if self.lists.is_empty() {
                    self.block();
                }
                self.lists.push(first);
            }
            Tag::Item => {
                if !self.out.is_empty() && !self.out.ends_with('\n') {
                    self.out.push('\n');
                }
                let depth = self.lists.len().saturating_sub(1);
                self.out.push_str(&"  ".repeat(depth));
                match self.lists.last_mut() {
                    Some(Some(n)) => {
                        self.out.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => self.out.push_str("• "),
                }
                self.fresh = true;
            }
            Tag::Emphasis => self.out.push_str("<i>"),
            Tag::Strong => self.out.push_str("<b>"),
            Tag::Strikethrough => self.out.push_str("<s>"),
            Tag::Link { link_type, dest_url, .. } | Tag::Image { link_type, dest_url, .. } => {
                let url = match link_type {
                    LinkType::Email => format!("mailto:{dest_url}"),
                    _ => dest_url.to_string(),
                };
                if url.is_empty() {
                    self.links.push("");
                } else {
                    self.out.push_str(&format!("<a href=\"{}\">", escape_attr(&url)));
                    self.links.push("</a>");
                }
            }
            Tag::HtmlBlock | Tag::FootnoteDefinition(_) | Tag::MetadataBlock(_) => self.block(),
            Tag::Table(_) | Tag::TableHead | Tag::TableRow | Tag::DefinitionList => self.block(),
            Tag::TableCell | Tag::DefinitionListTitle | Tag::DefinitionListDefinition => {}
            Tag::Superscript | Tag::Subscript => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) => self.out.push_str("</b>"),
            TagEnd::BlockQuote(_) => {
                let trimmed = self.out.trim_end().len();
                self.out.truncate(trimmed);
                self.out.push_str("</blockquote>");
            }
            TagEnd::CodeBlock => {
                if self.out.ends_with('\n') {
                    self.out.pop();
                }
                self.out.push_str(self.code_close.take().unwrap_or("</pre>"));
            }
            TagEnd::List(_) => {
                self.lists.pop();
            }
            TagEnd::Emphasis => self.out.push_str("</i>"),
            TagEnd::Strong => self.out.push_str("</b>"),
            TagEnd::Strikethrough => self.out.push_str("</s>"),
            TagEnd::Link | TagEnd::Image => {
                let close = self.links.pop().unwrap_or("");
                self.out.push_str(close);
            }
            TagEnd::TableCell => self.out.push_str(" | "),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(markdown: &str, expected: Expect) {
        expected.assert_eq(&to_telegram_html(markdown));
    }

    #[test]
    fn inline_formatting() {
        check(
            "**bold**, *italic*, ~~gone~~, `a < b && c`, [docs](https://example.com/?a=1&b=\"2\")",
            expect![[
                r#"<b>bold</b>, <i>italic</i>, <s>gone</s>, <code>a &lt; b &amp;&amp; c</code>, <a href="https://example.com/?a=1&amp;b=&quot;2&quot;">docs</a>"#
            ]],
        );
        check("***both*** and _under_", expect![[r#"<i><b>both</b></i> and <i>under</i>"#]]);
        check("<b>not a tag</b> & 1 < 2 > 0", expect![[r#"&lt;b&gt;not a tag&lt;/b&gt; &amp; 1 &lt; 2 &gt; 0"#]]);
        check(
            "<https://pincer.dev> <ops@example.com>",
            expect![[
                r#"<a href="https://pincer.dev">https://pincer.dev</a> <a href="mailto:ops@example.com">ops@example.com</a>"#
            ]],
        );
    }

    #[test]
    fn code_blocks() {
        check(
            "Run:\n\n```rust\nfn main() {\n    println!(\"<hi> & bye\");\n}\n```\n\nDone.",
            expect![[r#"
                Run:

                <pre><code class="language-rust">fn main() {
                    println!("&lt;hi&gt; &amp; bye");
                }</code></pre>

                Done."#]],
        );
        check("```\nplain\n```", expect![[r#"<pre>plain</pre>"#]]);
        check(
            "    indented\n    code",
            expect![[r#"
            <pre>indented
            code</pre>"#]],
        );
        check("```\nunclosed", expect![[r#"<pre>unclosed</pre>"#]]);
    }

    #[test]
    fn blocks() {
        check(
            "# Daily report\n\nAll **green**.\nSecond line.\n\n- one\n- two\n  1. nested\n  2. again\n\n> quoted\n> text\n\n---\nend",
            expect![[r#"
                <b>Daily report</b>

                All <b>green</b>.
                Second line.

                • one
                • two
                  1. nested
                  2. again

                <blockquote>quoted
                text</blockquote>

                ———

                end"#]],
        );
        check(
            "3. three\n4. four",
            expect![[r#"
            3. three
            4. four"#]],
        );
        check(
            "- loose\n\n- list",
            expect![[r#"
            • loose
            • list"#]],
        );
        check("![chart](https://example.com/c.png)", expect![[r#"<a href="https://example.com/c.png">chart</a>"#]]);
        check("", expect![[""]]);
    }
}
