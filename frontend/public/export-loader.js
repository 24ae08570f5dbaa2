// An exported page's script is stored gzip-compressed (app.js.gz): unpack it and run it. A host that already
// sent it with Content-Encoding: gzip hands over plain text, which runs as it is.
const bytes = new Uint8Array(await (await fetch("app.js.gz")).arrayBuffer());
const packed = bytes[0] === 0x1f && bytes[1] === 0x8b;
const source = packed ? await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text()
  : new TextDecoder().decode(bytes);
const script = document.createElement("script");
script.type = "module";
script.textContent = source;
document.head.append(script);
