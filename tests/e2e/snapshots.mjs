// Screenshots compared with a committed reference in docs/images/ (they are
// also the docs' pictures). Fonts and anti-aliasing differ a little between
// machines, so the comparison is coarse: both images are averaged over
// 4×4-pixel blocks, and at most 2% of the blocks may differ beyond
// pixelmatch's colour threshold. A page that lays out differently (a column
// gone, a box that overflows, another colour scheme) differs by far more.
//
// GATEHOUSE_BLESS=1 writes the new screenshots over the references.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pixelmatch from 'pixelmatch';
import pngjs from 'pngjs';
import { artifacts, root } from './helpers.mjs';

const { PNG } = pngjs;
export const references = join(root, 'docs', 'images');
const BLOCK = 4;
const MAX_DIFFERING = 0.02;
// A page may grow or shrink a little (a line wrapping one word earlier).
const MAX_HEIGHT_CHANGE = 0.08;

/** Averages `png` over BLOCK×BLOCK blocks, cropped to `height` rows. */
function coarse(png, height) {
  const w = Math.floor(png.width / BLOCK);
  const h = Math.floor(height / BLOCK);
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sum = [0, 0, 0, 0];
      for (let dy = 0; dy < BLOCK; dy++) {
        for (let dx = 0; dx < BLOCK; dx++) {
          const i = ((y * BLOCK + dy) * png.width + x * BLOCK + dx) * 4;
          for (let c = 0; c < 4; c++) sum[c] += png.data[i + c];
        }
      }
      for (let c = 0; c < 4; c++) out[(y * w + x) * 4 + c] = sum[c] / (BLOCK * BLOCK);
    }
  }
  return { data: out, width: w, height: h };
}

/** How the screenshot `name` differs from its reference: null when alike. */
export function difference(actualPath, referencePath) {
  const a = PNG.sync.read(readFileSync(actualPath));
  const b = PNG.sync.read(readFileSync(referencePath));
  if (a.width !== b.width) return `width ${a.width} px, the reference ${b.width} px`;
  if (Math.abs(a.height - b.height) > MAX_HEIGHT_CHANGE * b.height) {
    return `height ${a.height} px, the reference ${b.height} px`;
  }
  const height = Math.min(a.height, b.height);
  const [ca, cb] = [coarse(a, height), coarse(b, height)];
  const differing = pixelmatch(ca.data, cb.data, null, ca.width, ca.height, { threshold: 0.2 });
  const share = differing / (ca.width * ca.height);
  return share > MAX_DIFFERING ? `${(share * 100).toFixed(1)}% of the page differs (at most ${MAX_DIFFERING * 100}%)` : null;
}

/**
 * A full-page screenshot of `page` into artifacts/<name>.png, compared with
 * docs/images/<name>.png. `mask`: locators of what changes from run to run
 * (times, temporary paths), painted over in a flat colour.
 */
export async function matchesReference(page, name, { mask = [] } = {}) {
  const actual = join(artifacts, `${name}.png`);
  await page.screenshot({ path: actual, fullPage: true, mask, maskColor: '#c9ced8', animations: 'disabled', caret: 'hide' });
  const reference = join(references, `${name}.png`);
  if (process.env.GATEHOUSE_BLESS) {
    mkdirSync(references, { recursive: true });
    copyFileSync(actual, reference);
    return;
  }
  assert.ok(existsSync(reference), `no reference for ${name}: run the browser tests with GATEHOUSE_BLESS=1`);
  const diff = difference(actual, reference);
  assert.equal(diff, null, `${name}: ${diff}; compare artifacts/${name}.png with docs/images/${name}.png ` +
    '(if the change is meant, run with GATEHOUSE_BLESS=1)');
}
