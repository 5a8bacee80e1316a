import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { publicServices } from "@zero/gateway/public-services";
import { renderServiceMap } from "./service-map-source.js";

// Regenerates public-services.ts from the gateway's list; run after a service is added there.
const target = fileURLToPath(new URL("./public-services.ts", import.meta.url));
writeFileSync(target, renderServiceMap(publicServices));
process.stdout.write(`wrote ${target} (${publicServices.length} services)\n`);
