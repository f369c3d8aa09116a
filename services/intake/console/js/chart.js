// Small hand-written SVG charts for the supervisor, manager and QA views.
//
// Two kinds: a horizontal bar chart (rates, counts per department or per
// person: long Chinese labels read best on the left of a bar, and a phone
// has more height than width) and a vertical bar chart (a distribution over
// a few ordered buckets, such as transfers per case 0, 1, 2, 3+).  Each chart
// is an <svg> sized by its viewBox, so CSS scales it to the width of its box
// (390 px phones included); text sizes are chosen for a box about 360 px wide.
// Every bar is a <g class="chart-bar"> carrying data-key, data-label and
// data-value (the figure as the API gave it: a rate 0-1, a count; "" when the
// API had none), with a <title> so a pointer or a screen reader gets the
// exact figure; the <svg> has role="img" and a <title>/<desc>.
//
// Nothing here sets inline styles (the console's Content-Security-Policy
// forbids style="" from markup): colours come from css/reports.css classes,
// sizes are SVG attributes.

const SVG_NS = 'http://www.w3.org/2000/svg';

// Geometry shared by both charts, in viewBox units.
const WIDTH = 360;
const FONT = 13; // label text
const SMALL = 12; // axis ticks and values

let nextId = 0; // unique ids for aria-labelledby within the page

/**
 * Creates an SVG element with attributes and children.
 * @param {string} tag
 * @param {Object<string, string|number>} [attrs] null/undefined values are skipped
 * @param {Array<Node|string>} [children] strings become text nodes
 * @returns {SVGElement}
 */
function svg(tag, attrs, children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    }
    for (const c of children || []) {
        el.append(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return el;
}

/**
 * Roughly how wide a text is drawn, in viewBox units: CJK and full-width
 * characters are about one em, the rest about 0.6 em.  Good enough to size
 * the label column and to shorten labels that would not fit; never exact.
 */
export function textWidth(text, size = FONT) {
    let w = 0;
    for (const ch of String(text)) {
        const cp = ch.codePointAt(0);
        w += cp >= 0x2e80 ? size : size * 0.6;
    }
    return w;
}

/** The text cut to at most `max` units wide, with an ellipsis when cut. */
function fit(text, max, size = FONT) {
    const s = String(text);
    if (textWidth(s, size) <= max) return s;
    let out = '';
    for (const ch of s) {
        if (textWidth(out + ch + '…', size) > max) break;
        out += ch;
    }
    return out + '…';
}

/**
 * Axis ticks from 0 to at least `max`: about `count` steps of 1, 2 or 5
 * times a power of ten (whole numbers when `integer`).
 * @returns {number[]} ascending, starting at 0
 */
export function niceTicks(max, count = 4, integer = true) {
    if (!(max > 0)) return [0, 1];
    let step = max / count;
    const mag = Math.pow(10, Math.floor(Math.log10(step)));
    const f = step / mag;
    step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    if (integer) step = Math.max(1, Math.round(step));
    const ticks = [];
    for (let v = 0; v < max + step * 0.999; v += step) ticks.push(+v.toFixed(10));
    return ticks;
}

/** A rate 0-1 as a percentage with one decimal ("87.5%"); "—" for null. */
export function pct(rate) {
    if (rate === null || rate === undefined || Number.isNaN(rate)) return '—';
    const p = Math.round(rate * 1000) / 10;
    return `${p}%`;
}

/** The <svg> frame: role, title, description, test id. */
function frame(height, opts) {
    const id = `chart-${++nextId}`;
    const root = svg('svg', {
        xmlns: SVG_NS,
        viewBox: `0 0 ${WIDTH} ${height}`,
        class: `chart ${opts.className || ''}`.trim(),
        role: 'img',
        'aria-labelledby': `${id}-t ${id}-d`,
        'data-testid': opts.testid,
        preserveAspectRatio: 'xMinYMin meet',
    });
    root.append(
        svg('title', {id: `${id}-t`}, [opts.title || '']),
        svg('desc', {id: `${id}-d`}, [opts.desc || '']),
    );
    return root;
}

/** The empty state drawn inside the chart, so its box and test id remain. */
function emptyChart(opts) {
    const root = frame(60, opts);
    root.classList.add('chart-empty');
    root.append(svg('text', {x: WIDTH / 2, y: 34, 'text-anchor': 'middle', class: 'chart-empty-text',
        'font-size': FONT}, [opts.empty || '']));
    return root;
}

/**
 * A horizontal bar chart.
 *
 * @param {Object} opts
 * @param {string} opts.title   accessible title (also the <svg>'s <title>)
 * @param {string} [opts.desc]  accessible description
 * @param {string} [opts.testid] data-testid of the <svg>
 * @param {Array<{key:string,label:string,value:?number,long?:string,text?:string,note?:string}>} opts.items
 *        one bar each, top to bottom; `value` null draws no bar ("—");
 *        `long` is the label in the bar's <title> when `label` is a short form;
 *        `text` replaces the printed value, `note` is added to the <title>
 * @param {number} [opts.max]   the axis maximum (1 for rates); default from the data
 * @param {boolean} [opts.rate] values are rates 0-1: axis in percent, values as "87.5%"
 * @param {string} [opts.empty] the text drawn when there are no items
 * @returns {SVGSVGElement} a new element; the caller inserts it
 */
export function hbarChart(opts) {
    const items = opts.items || [];
    if (items.length === 0) return emptyChart(opts);
    const rate = !!opts.rate;
    const fmt = (v) => (v === null || v === undefined ? '—' : rate ? pct(v) : String(v));

    const labelW = Math.min(WIDTH * 0.42, Math.max(...items.map((i) => textWidth(i.label))) + 8);
    const valueW = rate ? 46 : 34; // room for "100%" or "999" right of the bar
    const x0 = labelW;
    const x1 = WIDTH - valueW;
    const row = 30;
    const bar = 18;
    const top = 6;
    const axis = 20;
    const height = top + items.length * row + axis;

    const dataMax = Math.max(0, ...items.map((i) => (typeof i.value === 'number' ? i.value : 0)));
    const ticks = rate ? [0, 0.25, 0.5, 0.75, 1] : niceTicks(opts.max ?? dataMax, 4, true);
    const max = rate ? 1 : ticks[ticks.length - 1];
    const sx = (v) => x0 + ((x1 - x0) * Math.min(v, max)) / max;

    const root = frame(height, opts);
    root.classList.add('chart-h');

    // Grid lines and tick labels under the bars.
    const grid = svg('g', {class: 'chart-grid', 'aria-hidden': 'true'});
    const yAxis = top + items.length * row;
    for (const tv of ticks) {
        const x = sx(tv);
        grid.append(
            svg('line', {x1: x, x2: x, y1: top - 2, y2: yAxis, class: 'chart-gridline'}),
            svg('text', {x, y: yAxis + 14, 'text-anchor': 'middle', 'font-size': SMALL, class: 'chart-tick'},
                [rate ? `${Math.round(tv * 100)}%` : String(tv)]),
        );
    }
    root.append(grid);

    items.forEach((it, i) => {
        const y = top + i * row + (row - bar) / 2;
        const has = typeof it.value === 'number' && !Number.isNaN(it.value);
        const g = svg('g', {
            class: `chart-bar${has ? '' : ' chart-bar-none'}`,
            'data-key': it.key,
            'data-label': it.label,
            'data-value': has ? it.value : '',
        });
        const shown = it.text ?? fmt(has ? it.value : null);
        g.append(svg('title', {}, [`${it.long || it.label}: ${shown}${it.note ? ` (${it.note})` : ''}`]));
        g.append(svg('text', {x: x0 - 6, y: y + bar / 2, 'text-anchor': 'end', 'dominant-baseline': 'central',
            'font-size': FONT, class: 'chart-label'}, [fit(it.label, labelW - 8)]));
        // A rate's bar sits on a 100% track, so the gap to 100% shows too.
        if (rate) g.append(svg('rect', {x: x0, y, width: x1 - x0, height: bar, class: 'chart-track'}));
        const w = has ? Math.max(sx(it.value) - x0, it.value > 0 ? 1.5 : 0) : 0;
        g.append(svg('rect', {x: x0, y, width: w.toFixed(2), height: bar, class: 'chart-fill', rx: 2}));
        // A rate's value sits in a column right of the 100% track; a count's just after its bar.
    g.append(svg('text', {x: rate ? x1 + 4 : x0 + w + 4, y: y + bar / 2, 'dominant-baseline': 'central',
            'font-size': SMALL, class: 'chart-value'}, [shown]));
        root.append(g);
    });
    return root;
}

/**
 * A vertical bar chart for a few ordered buckets (a distribution).
 *
 * @param {Object} opts  as hbarChart, without `rate`; `items` left to right;
 *        `opts.axisTitle` (optional) is written under the bucket labels
 * @returns {SVGSVGElement}
 */
export function vbarChart(opts) {
    const items = opts.items || [];
    if (items.length === 0) return emptyChart(opts);
    const left = 30;
    const right = 8;
    const top = 18;
    const plotH = 130;
    const bottom = opts.axisTitle ? 40 : 24;
    const height = top + plotH + bottom;

    const dataMax = Math.max(0, ...items.map((i) => (typeof i.value === 'number' ? i.value : 0)));
    const ticks = niceTicks(opts.max ?? dataMax, 4, true);
    const max = ticks[ticks.length - 1];
    const yOf = (v) => top + plotH - (plotH * Math.min(v, max)) / max;
    const slot = (WIDTH - left - right) / items.length;
    const barW = Math.min(56, slot * 0.6);

    const root = frame(height, opts);
    root.classList.add('chart-v');

    const grid = svg('g', {class: 'chart-grid', 'aria-hidden': 'true'});
    for (const tv of ticks) {
        const y = yOf(tv);
        grid.append(
            svg('line', {x1: left, x2: WIDTH - right, y1: y, y2: y, class: 'chart-gridline'}),
            svg('text', {x: left - 5, y, 'text-anchor': 'end', 'dominant-baseline': 'central', 'font-size': SMALL,
                class: 'chart-tick'}, [String(tv)]),
        );
    }
    root.append(grid);

    items.forEach((it, i) => {
        const cx = left + slot * i + slot / 2;
        const has = typeof it.value === 'number' && !Number.isNaN(it.value);
        const v = has ? it.value : 0;
        const y = yOf(v);
        const g = svg('g', {
            class: `chart-bar${has ? '' : ' chart-bar-none'}`,
            'data-key': it.key,
            'data-label': it.label,
            'data-value': has ? it.value : '',
        });
        const shown = it.text ?? (has ? String(it.value) : '—');
        g.append(svg('title', {}, [`${it.long || it.label}: ${shown}${it.note ? ` (${it.note})` : ''}`]));
        const h = Math.max(top + plotH - y, v > 0 ? 1.5 : 0);
        g.append(svg('rect', {x: (cx - barW / 2).toFixed(2), y: (top + plotH - h).toFixed(2), width: barW.toFixed(2),
            height: h.toFixed(2), class: 'chart-fill', rx: 2}));
        g.append(svg('text', {x: cx, y: top + plotH - h - 4, 'text-anchor': 'middle', 'font-size': SMALL,
            class: 'chart-value'}, [shown]));
        g.append(svg('text', {x: cx, y: top + plotH + 15, 'text-anchor': 'middle', 'font-size': FONT,
            class: 'chart-label'}, [fit(it.label, slot - 2)]));
        root.append(g);
    });
    root.append(svg('line', {x1: left, x2: WIDTH - right, y1: top + plotH, y2: top + plotH, class: 'chart-axis',
        'aria-hidden': 'true'}));
    if (opts.axisTitle) {
        root.append(svg('text', {x: left + (WIDTH - left - right) / 2, y: height - 6, 'text-anchor': 'middle',
            'font-size': SMALL, class: 'chart-tick', 'aria-hidden': 'true'}, [opts.axisTitle]));
    }
    return root;
}
