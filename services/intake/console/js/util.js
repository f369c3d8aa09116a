// Small helpers every view shares: building DOM without HTML strings (the
// CSP forbids inline markup tricks, and text from customers must never be
// parsed as HTML), error boxes, field errors next to their inputs, times in
// the site's time zone, countdown clocks that tick every second, and CSV
// downloads.

import { t, lang } from './i18n.js';
import { session, api, enc, onCaseEvent } from './api.js';

// ------------------------------------------------------------------ DOM

/**
 * el('div', {class: 'x', testid: 'y', dataset: {...}, on: {click: fn}},
 * child, ...). Attributes: `class`, `testid` (data-testid), `dataset`,
 * `on` (event listeners), `text` (textContent), boolean properties
 * (hidden, disabled, checked, selected, multiple, required) and any other
 * attribute by name. Children: nodes, strings (as text) or arrays of them;
 * null, undefined and false are skipped.
 */
export function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'testid') e.dataset.testid = v;
        else if (k === 'dataset') Object.assign(e.dataset, v);
        else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
        else if (k === 'text') e.textContent = v;
        else if (k === 'value') e.value = v;
        else if (['hidden', 'disabled', 'checked', 'selected', 'multiple', 'required'].includes(k)) e[k] = !!v;
        else e.setAttribute(k, v === true ? '' : String(v));
    }
    append(e, children);
    return e;
}

function append(parent, children) {
    for (const c of children) {
        if (c === null || c === undefined || c === false) continue;
        if (Array.isArray(c)) append(parent, c);
        else parent.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
}

/** Empties a node. */
export function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
}

/**
 * A <select>: options is [[value, label], ...]; `placeholder` adds a first
 * empty option. attrs as el().
 */
export function select(attrs, options, selected, placeholder) {
    const s = el('select', attrs);
    if (placeholder) s.appendChild(el('option', { value: '' }, placeholder));
    for (const [v, label] of options) s.appendChild(el('option', { value: v, selected: v === selected }, label));
    if (selected !== undefined && selected !== null) s.value = selected;
    return s;
}

/**
 * A labelled field: <label class="field"><span>label</span> input
 * <span class="field-error"></span></label>. `name` is the API's member name
 * (customer.phone), kept as data-field so that showFieldErrors() finds it.
 */
export function field(label, input, name, hint) {
    if (name) input.dataset.field = name;
    return el(
        'label',
        { class: 'field', dataset: name ? { fieldWrap: name } : {} },
        el('span', { class: 'field-label' }, label),
        input,
        hint ? el('span', { class: 'field-hint' }, hint) : null,
        el('span', { class: 'field-error', role: 'alert' }),
    );
}

// ------------------------------------------------------------------ errors

/**
 * Shows an error inside `target` (a view's root or any element): a red box
 * with the human message and the server's reason, never JSON or a stack.
 * err: an ApiError, another Error, or a string. Replaces an earlier box in
 * the same target; returns the box.
 */
export function showError(target, err) {
    clearError(target);
    let message;
    let reason = '';
    if (typeof err === 'string') message = err;
    else if (err && err.name === 'ApiError') {
        message = err.message;
        // The server's words where they say why (a rule's reason for 403 and
        // 409, what was wrong with a request); not for a stale version, an
        // expired session or field errors, which the message says already.
        if (err.reason && ![401, 412, 422].includes(err.status)) reason = err.reason;
    } else {
        console.error(err);
        message = t('err.5xx');
    }
    const box = el(
        'div',
        { class: 'error-box', testid: 'error', role: 'alert' },
        el('strong', {}, message),
        reason ? el('div', { class: 'error-reason' }, t('err.reason', { reason })) : null,
    );
    target.insertBefore(box, target.firstChild);
    return box;
}

/** Removes the error box (and field errors) that showError() put in target. */
export function clearError(target) {
    for (const b of target.querySelectorAll(':scope > .error-box')) b.remove();
    clearFieldErrors(target);
}

/** A notice (green or neutral) at the top of target; kind: 'ok' | 'info'. */
export function showNotice(target, text, kind = 'ok', testid = 'notice') {
    for (const b of target.querySelectorAll(':scope > .notice-box')) b.remove();
    const box = el('div', { class: 'notice-box notice-' + kind, testid, role: 'status' }, text);
    target.insertBefore(box, target.firstChild);
    return box;
}

/**
 * Puts a 422's field messages next to the inputs inside form whose
 * data-field names them (customer.phone; an array member like
 * required_documents[2] goes to required_documents). Returns the fields
 * it could not place.
 */
export function showFieldErrors(form, fields) {
    clearFieldErrors(form);
    const unplaced = [];
    for (const f of fields || []) {
        const name = f.field.replace(/\[\d+\]$/, '');
        const input = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
        const wrap = input && input.closest('.field');
        const slot = wrap && wrap.querySelector('.field-error');
        if (!slot) {
            unplaced.push(f);
            continue;
        }
        slot.textContent = fieldMessage(f.message);
        wrap.classList.add('has-error');
        input.setAttribute('aria-invalid', 'true');
    }
    const first = form.querySelector('.has-error input, .has-error select, .has-error textarea');
    if (first) first.focus();
    return unplaced;
}

// The server words its field messages in English. The frequent ones are
// said in Chinese here; any other is shown as the server wrote it.
const FIELD_ZH = [
    [/^is required and must not be blank/, () => '必填，不能为空'],
    [/^is required/, () => '必填'],
    [/^must not be blank/, () => '不能为空'],
    [/^must be a phone number/, () => '请填写正确的电话号码（5-20 位数字，可带 +、空格、横线或括号）'],
    [/^must be an e-mail address/, () => '请填写正确的电子邮件地址'],
    [/^is too long: at most (\d+) characters/, (m) => `太长了：最多 ${m[1]} 个字`],
    [/^must be 1-(\d+) characters/, (m) => `须为 1-${m[1]} 个字`],
    [/^must be one of/, () => '请从列表中选择'],
];

function fieldMessage(msg) {
    if (lang() !== 'zh') return msg;
    for (const [re, say] of FIELD_ZH) {
        const m = re.exec(msg);
        if (m) return say(m);
    }
    return msg;
}

export function clearFieldErrors(form) {
    for (const w of form.querySelectorAll('.has-error')) {
        w.classList.remove('has-error');
        const s = w.querySelector('.field-error');
        if (s) s.textContent = '';
    }
    for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
}

/**
 * Shows any error of an API call in the right place: field errors next to
 * the fields of `form` (and a box in `box` saying so), else a box in `box`.
 */
export function showApiError(box, err, form) {
    showError(box, err);
    if (form && err && err.status === 422 && err.fields && err.fields.length) {
        const unplaced = showFieldErrors(form, err.fields);
        if (unplaced.length) {
            const b = box.querySelector(':scope > .error-box');
            for (const f of unplaced) b.appendChild(el('div', { class: 'error-reason' }, f.field + ': ' + fieldMessage(f.message)));
        }
    }
}

// ------------------------------------------------------------------ times

function tz() {
    const s = session();
    return (s && s.site && s.site.time_zone) || undefined;
}

function locale() {
    return lang() === 'zh' ? 'zh-CN' : 'en-GB';
}

/**
 * A time (ISO string) as the site's local date and time: 2026/11/24 10:15,
 * with the seconds when `seconds` (a signed, timed handoff).
 */
export function fmtTime(iso, seconds) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    try {
        return new Intl.DateTimeFormat(locale(), {
            timeZone: tz(),
            year: 'numeric',
            month: '2-digit',
            day: '2-digit',
            hour: '2-digit',
            minute: '2-digit',
            second: seconds ? '2-digit' : undefined,
            hour12: false,
        }).format(d);
    } catch {
        return d.toLocaleString(); // an unknown time zone name: the browser's own
    }
}

/** Today's date in the site's time zone, YYYY-MM-DD. */
export function siteToday() {
    try {
        return new Intl.DateTimeFormat('en-CA', { timeZone: tz() }).format(new Date());
    } catch {
        return new Date().toISOString().slice(0, 10);
    }
}

/** A duration in ms as "2天3小时" / "2d 3h": the two largest units. */
export function fmtDuration(ms) {
    let s = Math.max(0, Math.floor(ms / 1000));
    const parts = [];
    const units = [
        ['d', 86400],
        ['h', 3600],
        ['m', 60],
        ['s', 1],
    ];
    for (const [u, n] of units) {
        const v = Math.floor(s / n);
        s -= v * n;
        if (v > 0 || parts.length) parts.push([u, v]);
    }
    if (!parts.length) parts.push(['s', 0]);
    const shown = parts.slice(0, 2).filter((p, i) => i === 0 || p[1] > 0);
    return shown.map(([u, v]) => t('dur.' + u, { n: v })).join(lang() === 'zh' ? '' : ' ');
}

// ------------------------------------------------------------------ clocks

// How a countdown is coloured:
//   late   - the due time has passed (or the server says breached);
//   near   - less than a quarter of the clock's span is left (span: from the
//            clock's start, or the case's registration, to the due time), or
//            less than 15 minutes whatever the span: the one-hour handoff
//            turns amber at 15 minutes, the one-day answer at about 6 hours
//            (2 working hours of an 8-hour day, plus the night);
//   paused - the case waits for the customer or a third party (the clocks
//            do not run);
//   ok     - otherwise, and for a clock already met.
const NEAR_SHARE = 0.25;
const NEAR_MIN_MS = 15 * 60 * 1000;

/** The state of a clock now: 'ok' | 'near' | 'late' | 'paused'. */
export function clockState(dueMs, startMs, nowMs, paused) {
    if (paused) return 'paused';
    const left = dueMs - nowMs;
    if (left < 0) return 'late';
    const span = startMs && startMs < dueMs ? dueMs - startMs : 0;
    if (left < NEAR_MIN_MS || (span && left < span * NEAR_SHARE)) return 'near';
    return 'ok';
}

/**
 * A countdown element (data-testid clock, data-kind, data-state) for a
 * clock: {kind, due (ISO), start (ISO or null), paused, met, breached}. It
 * is updated every second by startClockTicker().
 */
export function clockEl(c) {
    const e = el(
        'span',
        {
            class: 'clock',
            testid: 'clock',
            dataset: { kind: c.kind, due: c.due || '', start: c.start || '' },
        },
        el('span', { class: 'clock-label' }, t('clock.' + c.kind)),
        ' ',
        el('span', { class: 'clock-text' }),
    );
    if (c.paused) e.dataset.paused = '1';
    if (c.met) e.dataset.met = '1';
    if (c.breached) e.dataset.breached = '1';
    updateClock(e, Date.now());
    return e;
}

function updateClock(e, now) {
    const text = e.querySelector('.clock-text');
    const due = e.dataset.due ? Date.parse(e.dataset.due) : NaN;
    let state;
    let words;
    if (e.dataset.met) {
        state = 'ok';
        words = t('clock.met');
    } else if (isNaN(due)) {
        state = e.dataset.paused ? 'paused' : e.dataset.breached ? 'late' : 'ok';
        words = e.dataset.paused ? t('clock.paused') : e.dataset.breached ? t('clock.breached') : t('clock.nodue');
    } else {
        const start = e.dataset.start ? Date.parse(e.dataset.start) : NaN;
        state = clockState(due, isNaN(start) ? 0 : start, now, !!e.dataset.paused);
        if (e.dataset.breached && state !== 'paused') state = 'late';
        // Paused: the countdown is frozen (the due time moves when the case
        // resumes), so the due time as it stood is shown instead.
        if (state === 'paused') words = t('clock.paused') + ' · ' + t('clock.was-due', { time: fmtTime(e.dataset.due) });
        else if (due - now < 0) words = t('clock.over', { time: fmtDuration(now - due) });
        else words = t('clock.left', { time: fmtDuration(due - now) });
    }
    if (e.dataset.state !== state) e.dataset.state = state;
    if (text.textContent !== words) text.textContent = words;
    e.title = isNaN(due) ? '' : fmtTime(e.dataset.due);
}

let ticker = null;

/** Updates every clock on the page once a second (started once by the shell). */
export function startClockTicker() {
    if (ticker) return;
    ticker = setInterval(() => {
        const now = Date.now();
        for (const e of document.querySelectorAll('.clock[data-testid="clock"]')) updateClock(e, now);
    }, 1000);
}

/**
 * The countdowns of a list item (CaseSummary): the clocks withClocks() read
 * from the case when it did; else, from the list's own *_due fields, the
 * callback for a resolved case, or each of handoff, first contact, answer
 * and resolve that has a due time; all paused while the case waits.
 */
export function summaryClocks(c) {
    if (c._clocks) return c._clocks;
    const kinds =
        c.status === 'resolved' ? ['callback'] : ['handoff', 'first_contact', 'answer', 'resolve'];
    const out = [];
    for (const k of kinds) {
        const due = c[k + '_due'];
        if (due) out.push({ kind: k, due, start: c.created_at, paused: c.status === 'waiting' });
    }
    return out;
}

// The escalation ladder's clocks (supervisor after 2 days, manager after a
// week) are shown on the case page; a list row shows only the deadlines of
// the work itself, to stay readable on a phone.
const ROW_SKIP = new Set(['supervisor', 'manager']);
const CLOSED = new Set(['closed', 'closed_unresolvable', 'referred_out']);
const clockCache = new Map(); // case id -> {version, at, clocks}
const CLOCK_CACHE_MS = 30000;

/** A case's `clocks` (GET /v1/cases/{id}) as clockEl() descriptions: running, paused and breached ones. */
export function caseClocks(list, skip) {
    return (Array.isArray(list) ? list : [])
        .filter((k) => k.state !== 'met' && !(skip && skip.has(k.kind)))
        .map((k) => ({
            kind: k.kind,
            due: k.due_at,
            start: k.started_at,
            paused: k.state === 'paused',
            breached: k.state === 'breached',
        }));
}

/**
 * Gives each list item its countdowns (as `_clocks`). A list item carries
 * *_due fields, but when none is set for an open case (the deadlines are
 * kept by the escalation service and shown in the case's `clocks`), the
 * case is read for them: at most 6 reads at a time, kept per version for
 * 30 s, so a refresh reads again only what changed. A case that cannot be
 * read keeps the list's fields. Resolves to the same array.
 */
export async function withClocks(cases) {
    const need = cases.filter(
        (c) => !CLOSED.has(c.status) && !['handoff_due', 'first_contact_due', 'answer_due', 'resolve_due', 'callback_due'].some((k) => c[k]),
    );
    const now = Date.now();
    let next = 0;
    async function worker() {
        while (next < need.length) {
            const c = need[next++];
            const hit = clockCache.get(c.id);
            if (hit && hit.version === c.version && now - hit.at < CLOCK_CACHE_MS) {
                c._clocks = hit.clocks;
                continue;
            }
            try {
                const full = await api('GET', '/v1/cases/' + enc(c.id));
                c._clocks = caseClocks(full.clocks, ROW_SKIP);
                // An open case without clocks yet (the escalation service
                // starts them just after the event): not kept, read again.
                if (c._clocks.length) clockCache.set(c.id, { version: full.version, at: Date.now(), clocks: c._clocks });
            } catch (e) {
                if (e.status === 401) throw e;
            }
        }
    }
    await Promise.all(Array.from({ length: Math.min(6, need.length) }, worker));
    return cases;
}

// ------------------------------------------------------------------ misc

/** A random UUID (an Idempotency-Key), with a fallback for old browsers. */
export function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Downloads rows (an array of arrays) as a CSV file: UTF-8 with a BOM so
 * that Excel opens Chinese correctly, CRLF lines, every cell quoted when it
 * needs to be. A cell starting with = + - @ is prefixed with ' so that a
 * spreadsheet does not run it as a formula.
 */
export function downloadCsv(filename, rows) {
    const cell = (v) => {
        let s = v === null || v === undefined ? '' : String(v);
        if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
        return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    const text = '\ufeff' + rows.map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n';
    const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
    const a = el('a', { href: url, download: filename });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** fn, called at most once per `ms` after the last call (for bursts of live events). */
export function debounce(fn, ms) {
    let timer = null;
    const d = (...args) => {
        clearTimeout(timer);
        timer = setTimeout(() => fn(...args), ms);
    };
    d.cancel = () => clearTimeout(timer);
    return d;
}

/**
 * Keeps a view's lists fresh: `read(isAlive)` runs when `load()` is called,
 * on every live case event (a burst once), and every `ms` in case an event
 * was missed. One read at a time: a request during a read runs once after
 * it. `stop()` (the view's cleanup) ends it all.
 */
export function liveReader(read, ms = 60000) {
    let alive = true;
    let loading = false;
    let again = false;
    async function load() {
        if (loading) {
            again = true;
            return;
        }
        loading = true;
        try {
            await read(() => alive);
        } finally {
            loading = false;
            if (again && alive) {
                again = false;
                load();
            }
        }
    }
    const soon = debounce(load, 300);
    const unsub = onCaseEvent(() => soon());
    const timer = setInterval(load, ms);
    return {
        load,
        stop() {
            alive = false;
            unsub();
            soon.cancel();
            clearInterval(timer);
        },
    };
}

/** A person's name from the directory, or their code when unknown. */
export function personName(dir, code) {
    if (!code) return t('tl.nobody');
    const p = dir && dir.person(code);
    return p ? `${p.name} (${code})` : code;
}

/** A department's name from the directory, or its code. */
export function deptName(dir, code) {
    if (!code) return t('tl.nobody');
    const d = dir && dir.dept(code);
    return d ? d.name : code;
}

// ------------------------------------------------------------------ case lists

/**
 * One case of a list (a CaseSummary) as a `case-row` (data-case-id,
 * data-number): a link to its page with the number, status, subject,
 * customer, owner and department, and its countdowns. dir: the directory
 * (names), or null. opts.badge: an extra label (e.g. "handler to appoint").
 */
export function caseRow(c, dir, opts = {}) {
    const clocks = summaryClocks(c);
    return el(
        'li',
        { class: 'case-row status-' + c.status + ' urgency-' + c.urgency, testid: 'case-row', dataset: { caseId: c.id, number: c.number } },
        el(
            'a',
            { class: 'case-row-link', href: '#/case/' + c.id },
            el(
                'div',
                { class: 'case-row-head' },
                el('span', { class: 'case-row-number' }, c.number),
                el('span', { class: 'badge badge-status', dataset: { status: c.status } }, t('status.' + c.status)),
                c.urgency !== 'normal' ? el('span', { class: 'badge badge-urgent' }, t('urgency.' + c.urgency)) : null,
                el('span', { class: 'badge' }, t('type.' + c.type)),
                opts.badge ? el('span', { class: 'badge badge-attention' }, opts.badge) : null,
            ),
            el('div', { class: 'case-row-subject' }, c.subject),
            el(
                'div',
                { class: 'case-row-meta' },
                c.customer && c.customer.name ? el('span', {}, t('list.customer') + ': ' + c.customer.name) : null,
                el('span', {}, t('list.owner') + ': ' + personName(dir, c.owner)),
                el('span', {}, t('list.department') + ': ' + deptName(dir, c.department)),
                el('span', {}, t('list.created', { time: fmtTime(c.created_at) })),
            ),
        ),
        clocks.length ? el('div', { class: 'case-row-clocks' }, clocks.map(clockEl)) : null,
    );
}

/**
 * A list section: a heading and a <ul> of case rows (testid on the
 * section), or a line saying it is empty. more: the page had a `next`.
 */
export function caseSection(testid, title, cases, dir, opts = {}) {
    return el(
        'section',
        { class: 'case-section', testid },
        el('h2', {}, title, el('span', { class: 'count' }, String(cases.length) + (opts.more ? '+' : ''))),
        cases.length
            ? el('ul', { class: 'case-list' }, cases.map((c) => caseRow(c, dir, { badge: opts.badge && opts.badge(c) })))
            : el('p', { class: 'empty' }, t('common.empty')),
        opts.more ? el('p', { class: 'more' }, t('common.more')) : null,
        opts.extra || null,
    );
}

/** The earliest due time of a list item (ms since 1970), Infinity when none. */
export function firstDue(c) {
    let m = Infinity;
    for (const k of summaryClocks(c)) m = Math.min(m, Date.parse(k.due));
    return m;
}
