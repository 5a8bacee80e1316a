import { getOption, hasOption } from "@bufbuild/protobuf";
import type { DescField, DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { http } from "@zero/proto/google/api/annotations_pb";
import type { HttpRule } from "@zero/proto/google/api/http_pb";
import { creates_resource } from "@zero/proto/zero/options/v1/access_pb";
import {
  compareSpecificity,
  matchPathTemplate,
  parsePathTemplate,
  splitPath,
  templateShape,
  type PathBindings,
  type PathTemplate,
} from "./path-template.js";

/** One REST binding of an RPC: the primary `google.api.http` rule or one of its additional_bindings. */
export interface Route {
  /** Upper-case HTTP method, or `*` for a `custom { kind: "*" }` rule that accepts any method. */
  readonly httpMethod: string;
  readonly template: PathTemplate;
  readonly service: DescService;
  readonly method: DescMethod;
  /** `""` (no body), `"*"` (every field not bound by the path) or a top-level request field name. */
  readonly body: string;
  readonly bodyField: DescField | undefined;
  readonly responseBodyField: DescField | undefined;
  /** Each path variable resolved to the chain of fields it walks, outermost first. */
  readonly pathFields: ReadonlyMap<string, readonly DescField[]>;
  /** `(zero.options.v1.creates_resource)`: answer 201 instead of 200. */
  readonly createsResource: boolean;
  /**
   * A PATCH whose body is one message field and whose request has one top-level
   * `google.protobuf.FieldMask` field (AIP-134's `update_mask`): when the client sends no mask,
   * the gateway fills it from the fields present in the body, and REQUIRED fields of the body
   * are checked only where the mask covers them (a partial update need not resend them).
   */
  readonly updateMaskField: DescField | undefined;
}

/** A request's route, with the values its path template bound. */
export interface RouteMatch {
  readonly kind: "found";
  readonly route: Route;
  readonly bindings: PathBindings;
}

export type RouteLookup =
  | RouteMatch
  | { readonly kind: "method-not-allowed"; readonly allow: readonly string[] }
  | { readonly kind: "not-found" };

export interface RouteTable {
  readonly routes: readonly Route[];
  /** Throws PathDecodeError when a matching path holds a malformed percent-escape. */
  lookup(httpMethod: string, path: string): RouteLookup;
}

export class RouteTableError extends Error {
  constructor(method: DescMethod | undefined, reason: string) {
    super(method ? `${method.parent.typeName}.${method.name}: ${reason}` : reason);
    this.name = "RouteTableError";
  }
}

/**
 * Builds the REST routes from the `google.api.http` options of the given services. Every problem
 * in an annotation (bad template, unknown field, duplicate binding) fails start-up rather than
 * surfacing as a 500 on the first request.
 */
export function createRouteTable(services: readonly DescService[]): RouteTable {
  const routes: Route[] = [];
  for (const service of services) {
    for (const method of service.methods) {
      if (!hasOption(method, http)) continue;
      const rule = getOption(method, http);
      routes.push(routeFromRule(service, method, rule));
      for (const extra of rule.additionalBindings) {
        if (extra.additionalBindings.length > 0) {
          throw new RouteTableError(method, "additional_bindings must not nest additional_bindings");
        }
        routes.push(routeFromRule(service, method, extra));
      }
    }
  }

  const seen = new Map<string, Route>();
  for (const route of routes) {
    const key = `${route.httpMethod} ${templateShape(route.template)}`;
    const other = seen.get(key);
    if (other) {
      throw new RouteTableError(
        route.method,
        `${key} is already bound to ${other.method.parent.typeName}.${other.method.name}`,
      );
    }
    seen.set(key, route);
  }
  routes.sort((a, b) => compareSpecificity(a.template, b.template));

  const lookup = (httpMethod: string, path: string): RouteLookup => {
    const split = splitPath(path);
    if (!split) return { kind: "not-found" };
    const allow = new Set<string>();
    for (const route of routes) {
      const methodMatches = route.httpMethod === httpMethod || route.httpMethod === "*";
      const bindings = matchPathTemplate(route.template, split);
      if (!bindings) continue;
      if (methodMatches) return { kind: "found", route, bindings };
      allow.add(route.httpMethod);
    }
    // HEAD is GET without the body (RFC 9110 §9.3.2; Node's responses drop it themselves).
    if (httpMethod === "HEAD" && allow.has("GET")) return lookup("GET", path);
    if (allow.has("GET")) allow.add("HEAD");
    if (allow.size > 0) return { kind: "method-not-allowed", allow: [...allow].sort() };
    return { kind: "not-found" };
  };
  return { routes, lookup };
}

function routeFromRule(service: DescService, method: DescMethod, rule: HttpRule): Route {
  const { httpMethod, path } = patternOf(method, rule);
  let template: PathTemplate;
  try {
    template = parsePathTemplate(path);
  } catch (e) {
    throw new RouteTableError(method, e instanceof Error ? e.message : String(e));
  }

  const pathFields = new Map<string, readonly DescField[]>();
  for (const variable of template.variables) {
    pathFields.set(variable.fieldPath.join("."), resolvePathField(method, method.input, variable.fieldPath));
  }

  let bodyField: DescField | undefined;
  if (rule.body !== "" && rule.body !== "*") {
    bodyField = method.input.fields.find((f) => f.name === rule.body);
    if (!bodyField)
      throw new RouteTableError(method, `body "${rule.body}" is not a field of ${method.input.typeName}`);
    if (pathFields.has(bodyField.name)) {
      throw new RouteTableError(method, `body field "${bodyField.name}" is also bound by the path`);
    }
  }

  let responseBodyField: DescField | undefined;
  if (rule.responseBody !== "") {
    responseBodyField = method.output.fields.find((f) => f.name === rule.responseBody);
    if (!responseBodyField) {
      throw new RouteTableError(
        method,
        `response_body "${rule.responseBody}" is not a field of ${method.output.typeName}`,
      );
    }
  }

  const maskFields = method.input.fields.filter(
    (f) => f.fieldKind === "message" && f.message.typeName === "google.protobuf.FieldMask",
  );
  const updateMaskField =
    httpMethod === "PATCH" && bodyField?.fieldKind === "message" && maskFields.length === 1
      ? maskFields[0]
      : undefined;

  return {
    httpMethod,
    template,
    service,
    method,
    body: rule.body,
    bodyField,
    responseBodyField,
    pathFields,
    createsResource: getOption(method, creates_resource),
    updateMaskField,
  };
}

function patternOf(method: DescMethod, rule: HttpRule): { httpMethod: string; path: string } {
  switch (rule.pattern.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      return { httpMethod: rule.pattern.case.toUpperCase(), path: rule.pattern.value };
    case "custom": {
      const kind = rule.pattern.value.kind;
      if (!/^(?:\*|[A-Za-z]+)$/.test(kind))
        throw new RouteTableError(method, `invalid custom method "${kind}"`);
      return { httpMethod: kind.toUpperCase(), path: rule.pattern.value.path };
    }
    default:
      throw new RouteTableError(
        method,
        "google.api.http rule has no pattern (get/put/post/delete/patch/custom)",
      );
  }
}

/** Path variables must name a singular primitive field, reached through singular message fields. */
function resolvePathField(method: DescMethod, input: DescMessage, fieldPath: readonly string[]): DescField[] {
  const chain: DescField[] = [];
  let message: DescMessage | undefined = input;
  for (const [i, name] of fieldPath.entries()) {
    const field: DescField | undefined = message?.fields.find((f) => f.name === name);
    const dotted = fieldPath.slice(0, i + 1).join(".");
    if (!field)
      throw new RouteTableError(method, `path variable "${dotted}" is not a field of ${input.typeName}`);
    chain.push(field);
    const last = i === fieldPath.length - 1;
    if (last) {
      if (field.fieldKind !== "scalar" && field.fieldKind !== "enum") {
        throw new RouteTableError(method, `path variable "${dotted}" must be a singular primitive field`);
      }
    } else {
      if (field.fieldKind !== "message") {
        throw new RouteTableError(method, `path variable "${dotted}" must be a singular message field`);
      }
      message = field.message;
    }
  }
  return chain;
}
