// An exported page's styles and script are stored gzip-compressed (style.css.gz, app.js.gz): unpack them, put the
// styles in, show the page (hidden until then) and run the script. A host that already sent a file with
// Content-Encoding: gzip hands over plain text, which is used as it is.
async function unpacked(file) {
  const bytes = new Uint8Array(await (await fetch(file)).arrayBuffer());
  const packed = bytes[0] === 0x1f && bytes[1] === 0x8b;
  return packed ? await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text()
    : new TextDecoder().decode(bytes);
}
const [css, source] = await Promise.all([unpacked("style.css.gz"), unpacked("app.js.gz")]);
const style = document.createElement("style");
style.textContent = css + "\nbody { visibility: visible; }";
document.head.append(style);
const script = document.createElement("script");
script.type = "module";
script.textContent = source;
document.head.append(script);
