import { describe, expect, it } from "vitest";
import { localeCandidates, normaliseLocale, renderTemplate, templateProblems } from "./template.js";

const fields = (content: { subject: string; html: string; text: string }) =>
  Object.fromEntries(templateProblems(content).map((p) => [p.field, p.description]));

describe("renderTemplate", () => {
  it("HTML-escapes values in the HTML body and leaves the text body and subject as written", () => {
    const out = renderTemplate(
      { subject: "Hi {{name}}", html: "<p>{{name}}</p>", text: "Hi {{name}}" },
      { name: `<script>alert("x")</script> & co` },
    );
    expect(out.html).toBe("<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co</p>");
    expect(out.text).toBe(`Hi <script>alert("x")</script> & co`);
    expect(out.subject).toBe(`Hi <script>alert("x")</script> & co`);
  });

  it("removes line breaks from the subject so a value cannot add a header", () => {
    const out = renderTemplate(
      { subject: "Hi {{name}}", html: "", text: "x" },
      { name: "Ada\r\nBcc: eve@example.com" },
    );
    expect(out.subject).toBe("Hi Ada Bcc: eve@example.com");
    expect(out.subject).not.toMatch(/[\r\n]/);
  });

  it("renders missing variables as empty and supports the built-in block helpers", () => {
    const out = renderTemplate(
      { subject: "s", html: "{{#if code}}<b>{{code}}</b>{{else}}none{{/if}}[{{missing}}]", text: "" },
      { code: "123456" },
    );
    expect(out.html).toBe("<b>123456</b>[]");
  });

  it("does not expose inherited properties of the variables", () => {
    const out = renderTemplate(
      { subject: "[{{constructor}}]", html: "[{{constructor.name}}][{{__proto__}}]", text: "[{{toString}}]" },
      {},
    );
    expect(out).toEqual({ subject: "[]", html: "[][]", text: "[]" });
  });
});

describe("templateProblems", () => {
  it("accepts a plain template", () => {
    expect(
      templateProblems({ subject: "Hello {{first_name}}", html: "<p>{{x}}</p>", text: "{{x}}" }),
    ).toEqual([]);
  });

  it("refuses raw output in the HTML body", () => {
    expect(fields({ subject: "s", html: "<p>{{{name}}}</p>", text: "" })).toHaveProperty("html_body");
    expect(fields({ subject: "s", html: "<p>{{&name}}</p>", text: "" }).html_body).toMatch(/raw output/);
    expect(fields({ subject: "s", html: "{{#if a}}{{{name}}}{{/if}}", text: "" }).html_body).toMatch(
      /raw output/,
    );
  });

  it("refuses partials, unknown helpers and syntax errors, naming the field", () => {
    const problems = fields({ subject: "{{#if}}", html: "{{shout name}}", text: "{{> footer}}" });
    expect(problems.subject).toMatch(/not a valid template/);
    expect(problems.html_body).toMatch(/unknown helper shout/);
    expect(problems.text_body).toMatch(/partials/);
  });

  it("requires a subject and at least one body", () => {
    const problems = fields({ subject: " ", html: "", text: "" });
    expect(Object.keys(problems).sort()).toEqual(["html_body", "subject"]);
  });
});

describe("locales", () => {
  it("canonicalises BCP 47 tags and refuses anything else", () => {
    expect(normaliseLocale("fr_ca")).toBe("fr-CA");
    expect(normaliseLocale("")).toBe("en");
    expect(normaliseLocale("PT-br")).toBe("pt-BR");
    expect(normaliseLocale("x")).toBeUndefined();
    expect(normaliseLocale("en; drop table")).toBeUndefined();
  });

  it("falls back from the region to the language to en", () => {
    expect(localeCandidates("fr-CA")).toEqual(["fr-CA", "fr", "en"]);
    expect(localeCandidates("en")).toEqual(["en"]);
  });
});
