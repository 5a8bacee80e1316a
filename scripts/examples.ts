import { DEMO_ACCOUNT } from "./demo-data.js";
import { baseUrl, gateway, services, type PlannedProcess } from "./platform.js";

/** The banner printed once everything is ready: where things are and commands to paste. */
export function platformBanner(running: PlannedProcess[]): string {
  const g = baseUrl(gateway.port);
  const auth = `127.0.0.1:${services.find((s) => s.name === "auth")?.port ?? 9001}`;
  const login = JSON.stringify({ email: DEMO_ACCOUNT.email, password: DEMO_ACCOUNT.password });
  const register = JSON.stringify({
    email: "you@example.com",
    password: "a long passphrase",
    firstName: "Ada",
  });
  const width = Math.max(0, ...running.map((p) => p.name.length));
  const edgeFirst = [...running].sort(
    (a, b) => Number(b.name === gateway.name) - Number(a.name === gateway.name),
  );
  return [
    "",
    "Zero is up:",
    ...edgeFirst.map(
      (p) => `  ${p.name.padEnd(width)}  ${baseUrl(p.port)}   (GET /readyz /healthz /metrics)`,
    ),
    "",
    `Demo account: ${DEMO_ACCOUNT.email} / ${DEMO_ACCOUNT.password}`,
    "",
    "REST through the gateway (the seeds' legacy routes /auth/register and /auth/login work too):",
    `  curl -i -X POST ${g}/v1/auth/register -H 'content-type: application/json' -d '${register}'`,
    `  curl -s -X POST ${g}/v1/auth/login -H 'content-type: application/json' -d '${login}'`,
    `  curl -s ${g}/v1/auth/jwks`,
    `  curl -s ${g}/health`,
    "",
    "gRPC with reflection, straight to a service (buf ships in node_modules; grpcurl works the same way):",
    `  pnpm exec buf curl --protocol grpc --http2-prior-knowledge --list-services http://${auth}`,
    `  pnpm exec buf curl --protocol grpc --http2-prior-knowledge -d '${login}' http://${auth}/zero.auth.v1.AuthService/Login`,
    `  grpcurl -plaintext ${auth} list`,
    `  grpcurl -plaintext -d '${login}' ${auth} zero.auth.v1.AuthService/Login`,
    `  grpcurl -plaintext ${auth} grpc.health.v1.Health/Check`,
    "",
    "Connect (an HTTP POST with JSON), straight to a service or through the gateway:",
    `  curl -s -X POST http://${auth}/zero.auth.v1.AuthService/GetJwks -H 'content-type: application/json' -H 'connect-protocol-version: 1' -d '{}'`,
    `  curl -s -X POST ${g}/zero.auth.v1.AuthService/GetJwks -H 'content-type: application/json' -H 'connect-protocol-version: 1' -d '{}'`,
    "",
    "Ctrl-C stops everything.",
    "",
  ].join("\n");
}
