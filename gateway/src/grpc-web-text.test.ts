import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  Base64DecodeError,
  binaryContentType,
  createBase64Decoder,
  textContentType,
} from "./grpc-web-text.js";

async function decode(chunks: string[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of Readable.from(chunks.map((c) => Buffer.from(c))).pipe(createBase64Decoder())) {
    parts.push(part as Buffer);
  }
  return Buffer.concat(parts);
}

describe("grpc-web-text base64", () => {
  it("decodes a body split anywhere, with padding inside (separately encoded chunks)", async () => {
    const a = Buffer.from([0, 0, 0, 0, 1, 0x41, 0x42]);
    const b = Buffer.from([0x80, 1, 2]);
    const text = a.toString("base64") + b.toString("base64");
    expect(text).toContain("=");
    for (let cut = 0; cut <= text.length; cut++) {
      expect(await decode([text.slice(0, cut), text.slice(cut)])).toEqual(Buffer.concat([a, b]));
    }
    expect(await decode(["AAAA", "\r\nAQ", "==\n"])).toEqual(Buffer.from([0, 0, 0, 1]));
  });

  it("refuses what is not base64, and a truncated body", async () => {
    await expect(decode(["not*base64!!"])).rejects.toBeInstanceOf(Base64DecodeError);
    await expect(decode(["AAA"])).rejects.toBeInstanceOf(Base64DecodeError);
    await expect(decode(["A=AA"])).rejects.toBeInstanceOf(Base64DecodeError);
  });

  it("maps content types both ways, keeping the codec suffix", () => {
    expect(binaryContentType("application/grpc-web-text+proto")).toBe("application/grpc-web+proto");
    expect(binaryContentType("application/grpc-web-text")).toBe("application/grpc-web");
    expect(textContentType("application/grpc-web+proto")).toBe("application/grpc-web-text+proto");
    expect(textContentType("application/grpc-web-text")).toBe("application/grpc-web-text");
  });
});
