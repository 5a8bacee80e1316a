import { configureTextEncoding } from "@bufbuild/protobuf/wire";

/**
 * protobuf-es decodes the strings of binary messages with a default `TextDecoder`, which drops a
 * leading U+FEFF (byte-order mark): `"\ufeffhi"` sent over gRPC, or by the gateway for a REST
 * body, reached the handler as `"hi"`. Strings are data, not documents with an encoding signature:
 * decoders that keep it make every protocol deliver what was sent. Called by the kit's server and
 * the gateway before they serve; harmless to call again.
 */
export function keepByteOrderMarks(): void {
  const encoder = new TextEncoder();
  const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
  const strict = new TextDecoder("utf-8", { ignoreBOM: true, fatal: true });
  configureTextEncoding({
    encodeUtf8: (text) => encoder.encode(text),
    decodeUtf8: (bytes, fatal) => (fatal === true ? strict : lenient).decode(bytes),
    checkUtf8(text) {
      try {
        encodeURIComponent(text);
        return true;
      } catch {
        return false;
      }
    },
  });
}
