import { Transform, type TransformCallback } from "node:stream";

// gRPC-Web's text mode (`application/grpc-web-text`, for clients that can only send and read
// text) is binary gRPC-Web in base64. Zero's services speak only the binary form, so the gateway
// translates both directions. PROTOCOL-WEB.md allows the body to be a series of separately padded
// base64 chunks, so each response chunk is encoded on its own (flushed at once, which server
// streaming needs), and the request is decoded in 4-character groups (padding may appear inside).

const base64Alphabet = /^[A-Za-z0-9+/]*={0,2}$/;

export class Base64DecodeError extends Error {
  constructor() {
    super("the grpc-web-text request body is not valid base64");
    this.name = "Base64DecodeError";
  }
}

/** `application/grpc-web-text+proto` → `application/grpc-web+proto`, and back. */
export function binaryContentType(textContentType: string): string {
  return textContentType.replace(/^application\/grpc-web-text/i, "application/grpc-web");
}

export function textContentType(binaryType: string): string {
  return binaryType.replace(/^application\/grpc-web(?!-text)/i, "application/grpc-web-text");
}

/** Decodes a base64 request body stream; fails with Base64DecodeError on anything but base64. */
export function createBase64Decoder(): Transform {
  let carry = "";
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      const text = carry + chunk.toString("latin1").replace(/[\r\n\t ]/g, "");
      const whole = text.length - (text.length % 4);
      carry = text.slice(whole);
      try {
        callback(null, decodeGroups(text.slice(0, whole)));
      } catch (error) {
        callback(error as Error);
      }
    },
    flush(callback: TransformCallback) {
      if (carry !== "") callback(new Base64DecodeError());
      else callback();
    },
  });
}

/** Decodes whole 4-character groups, each of which may end in padding. */
function decodeGroups(text: string): Buffer {
  if (text === "") return Buffer.alloc(0);
  // Fast path: no padding inside, one decode.
  const firstPad = text.indexOf("=");
  if (firstPad < 0 || firstPad >= text.length - 2) {
    if (!base64Alphabet.test(text)) throw new Base64DecodeError();
    return Buffer.from(text, "base64");
  }
  const parts: Buffer[] = [];
  for (let i = 0; i < text.length; i += 4) {
    const group = text.slice(i, i + 4);
    if (!base64Alphabet.test(group)) throw new Base64DecodeError();
    parts.push(Buffer.from(group, "base64"));
  }
  return Buffer.concat(parts);
}
