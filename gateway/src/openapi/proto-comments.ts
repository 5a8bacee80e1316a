import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, sep } from "node:path";
import type { DescFile } from "@bufbuild/protobuf";
import protobuf from "protobufjs";

// The OpenAPI descriptions come from the comments in the .proto files. protobuf-es embeds its
// descriptors without `source_code_info` (DescMessage, DescField, DescMethod carry no comments),
// so the gateway reads the .proto sources themselves at start-up — the same files the generated
// code was made from, shipped with @zero/proto — and parses their comments with protobufjs.
// Without the sources the document simply has no descriptions.

/** Comments by element: `pkg.Message`, `pkg.Message.field`, `pkg.Enum.VALUE`, `pkg.Service.Method`. */
export type ProtoComments = ReadonlyMap<string, string>;

/** Where @zero/proto keeps its sources: the package root, beside `gen/`. */
export function defaultProtoSourceRoot(): string | undefined {
  try {
    const generated = createRequire(import.meta.url).resolve("@zero/proto/zero/options/v1/access_pb");
    const marker = `${sep}gen${sep}`;
    const at = generated.lastIndexOf(marker);
    return at < 0 ? undefined : generated.slice(0, at);
  } catch {
    return undefined;
  }
}

export interface LoadedComments {
  readonly comments: ProtoComments;
  /** Files whose source was not found (their elements have no description). */
  readonly missing: readonly string[];
}

export function loadProtoComments(files: Iterable<DescFile>, sourceRoot: string | undefined): LoadedComments {
  const comments = new Map<string, string>();
  const missing: string[] = [];
  for (const file of files) {
    const path = sourceRoot === undefined ? undefined : join(sourceRoot, file.proto.name);
    if (path === undefined || !existsSync(path)) {
      missing.push(file.proto.name);
      continue;
    }
    try {
      const parsed = protobuf.parse(readFileSync(path, "utf8"), {
        keepCase: true,
        alternateCommentMode: true,
      });
      collect(parsed.root, comments);
    } catch {
      missing.push(file.proto.name);
    }
  }
  return { comments, missing };
}

function collect(namespace: protobuf.NamespaceBase, out: Map<string, string>): void {
  for (const element of namespace.nestedArray) {
    const name = element.fullName.replace(/^\./, "");
    if (element.comment) out.set(name, element.comment);
    if (element instanceof protobuf.Type) {
      for (const field of element.fieldsArray)
        if (field.comment) out.set(`${name}.${field.name}`, field.comment);
      for (const oneof of element.oneofsArray)
        if (oneof.comment) out.set(`${name}.${oneof.name}`, oneof.comment);
    } else if (element instanceof protobuf.Enum) {
      for (const [value, comment] of Object.entries(element.comments)) {
        if (comment) out.set(`${name}.${value}`, comment);
      }
    } else if (element instanceof protobuf.Service) {
      for (const method of element.methodsArray)
        if (method.comment) out.set(`${name}.${method.name}`, method.comment);
    }
    if (element instanceof protobuf.Namespace) collect(element, out);
  }
}
