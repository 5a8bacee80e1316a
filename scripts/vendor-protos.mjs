// Copies the third-party .proto sources Zero's contracts import into `third_party/proto`, a second
// buf module. The Buf Schema Registry cannot be reached from the build machines, so these come
// from npm packages pinned in the root package.json. Runs on every install (root `postinstall`).
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "third_party", "proto");
const require = createRequire(join(root, "package.json"));
const packageDir = (name) => dirname(require.resolve(`${name}/package.json`));

const sources = [
  {
    from: join(packageDir("google-proto-files"), "google", "rpc", "error_details.proto"),
    to: "google/rpc/error_details.proto",
  },
  ...["annotations", "http", "field_behavior", "httpbody"].map((name) => ({
    from: join(packageDir("google-proto-files"), "google", "api", `${name}.proto`),
    to: `google/api/${name}.proto`,
  })),
  {
    from: join(packageDir("grpc-health-check"), "proto", "health", "v1", "health.proto"),
    to: "grpc/health/v1/health.proto",
  },
  ...["v1", "v1alpha"].map((version) => ({
    from: join(
      packageDir("@grpc/reflection"),
      "build",
      "proto",
      "grpc",
      "reflection",
      version,
      "reflection.proto",
    ),
    to: `grpc/reflection/${version}/reflection.proto`,
  })),
];

rmSync(out, { recursive: true, force: true });
for (const { from, to } of sources) {
  mkdirSync(dirname(join(out, to)), { recursive: true });
  cpSync(from, join(out, to));
}
console.log(`vendored ${sources.length} third-party protos into third_party/proto`);
