// Bundles the front-end into the Python package (src/llmviz/static) and the test tools into dist-test/, or
// the unit tests into .test-build/.
import { build } from "esbuild";
import { cpSync, mkdirSync, readdirSync, rmSync } from "node:fs";

const tests = process.argv.includes("--tests");

if (tests) {
  rmSync(".test-build", { recursive: true, force: true });
  await build({
    entryPoints: readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`),
    bundle: true, platform: "node", format: "esm", outdir: ".test-build", outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
} else {
  const out = "../src/llmviz/static";
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: ["src/main.ts"], bundle: true, minify: true, format: "esm", target: "es2022",
    outfile: `${out}/app.js`, sourcemap: false, logLevel: "warning",
  });
  cpSync("public", out, { recursive: true });
  // The test hooks: their own bundle, outside the package; the end-to-end tests load it before the page.
  await build({
    entryPoints: ["src/testhooks.ts"], bundle: true, format: "iife", target: "es2022",
    outfile: "dist-test/testhooks.js", logLevel: "warning",
  });
  // What an exported page answers, computed in node: tests/test_export.py compares it with the server's. The page's
  // explanations of cells of a pass Python wrote: the Python tests of explanations read them (tests/pagexplain.py).
  for (const tool of ["exportcheck", "explaincheck"]) {
    await build({
      entryPoints: [`tools/${tool}.ts`], bundle: true, platform: "node", format: "esm", target: "es2022",
      outfile: `dist-test/${tool}.mjs`, logLevel: "warning",
    });
  }
  console.log(`built the front-end into ${out} (test hooks: frontend/dist-test)`);
}
