// The customer-relations supervisor's page (客服主管, `#/supervisor`): the
// day's reception log (《接待业主情况记录》, the supervisor's daily review),
// the cases past a deadline and the cases that climbed the escalation ladder.
// Designating a lead department is done on the case page (its
// act-designate_lead button), so every case here links there.
//
// This module also exports the small pieces the manager and QA pages share
// on top of util.js (date arithmetic, names for labels, error boxes with a
// retry, report sections, the escalated cases, finding cases by number):
// the console's layout has no shared file for the three report views, and
// these pieces are not charts.
//
// Data: GET /v1/sites/{site}/reports/reception-log?date= (the log);
// GET /v1/cases?overdue=true (overdue); GET /v1/cases?status=<open
// statuses>&escalation_level=supervisor,manager,leader (escalated);
// GET /v1/cases?text=<number prefix> to find the ids of the log's
// cases, since its rows carry numbers but no ids.

import { api, ApiError, directoryOrEmpty, enc, onCaseEvent, sitePath } from '../api.js';
import { addMessages, t } from '../i18n.js';
import { caseRow, clear, debounce, downloadCsv, el, showError, siteToday } from '../util.js';

addMessages({
    zh: {
        'sup.title': '客服主管',
        'sup.log': '接待业主情况记录',
        'sup.log.hint': '每日检查：当天登记的全部事项，包括当场办结的。',
        'sup.log.date': '日期',
        'sup.log.today': '今天',
        'sup.log.empty': '这一天还没有登记的事项。',
        'sup.log.count': '共 {n} 条',
        'sup.overdue': '已超时的事项',
        'sup.overdue.hint': '有时限已过（转办、联系客户、答复、办结或回访）。',
        'sup.overdue.empty': '没有超时的事项。',
        'sup.escalated': '已升级的事项',
        'sup.escalated.hint': '未办结、已升级到主管、经理或领导的事项。需要指定主办部门的，请打开事项页面操作。',
        'sup.escalated.empty': '没有已升级的未办结事项。',
        'sup.escalated.partial': '只检查了最近的 {n} 条未办结事项，更早的可能未列出。',
        'rep.col.time': '时间',
        'rep.head.time': '时间 / 编号',
        'rep.head.customer': '客户 / 单位 / 电话 / 房号',
        'rep.head.type': '类型 / 渠道',
        'rep.col.number': '编号',
        'rep.col.customer': '客户',
        'rep.col.unit': '单位',
        'rep.col.contact': '联系电话',
        'rep.col.room': '房号/地址',
        'rep.col.channel': '渠道',
        'rep.col.type': '类型',
        'rep.col.matter': '事由',
        'rep.col.responder': '首问责任人',
        'rep.col.handling': '处理情况',
        'rep.col.status': '状态',
        'rep.col.result': '结果',
        'rep.handling.onspot': '由 {who} 当场办结',
        'rep.handling.dept': '部门：{dept}',
        'rep.handling.owner': '责任人：{who}',
        'rep.handling.transfers': '转办 {n} 次',
        'rep.esc': '升级：{level}',
        'rep.open-case': '打开事项',
        'rep.retry': '重试',
        'rep.csv': '导出 CSV（Excel）',
        'rep.forbidden': '这里的内容只有质检、客服主管和经理可以查看。',
        'rep.lost': '网络连接中断，内容没有载入。请检查网络后点“重试”。',
        'rep.more': '只显示了前 {n} 条。',
        'rep.comma': '，',
    },
    en: {
        'sup.title': 'Supervisor',
        'sup.log': 'Reception log',
        'sup.log.hint': 'The daily review: every case registered that day, those resolved on the spot included.',
        'sup.log.date': 'Date',
        'sup.log.today': 'Today',
        'sup.log.empty': 'Nothing was registered that day.',
        'sup.log.count': '{n} cases',
        'sup.overdue': 'Overdue cases',
        'sup.overdue.hint': 'A deadline has passed (handoff, first contact, answer, resolution or callback).',
        'sup.overdue.empty': 'No case is overdue.',
        'sup.escalated': 'Escalated cases',
        'sup.escalated.hint': 'Open cases escalated to the supervisor, the manager or a leader. To designate a lead department, open the case.',
        'sup.escalated.empty': 'No open case has been escalated.',
        'sup.escalated.partial': 'Only the latest {n} open cases were checked; older ones may be missing.',
        'rep.col.time': 'Time',
        'rep.head.time': 'Time / number',
        'rep.head.customer': 'Customer / unit / phone / room',
        'rep.head.type': 'Type / channel',
        'rep.col.number': 'Number',
        'rep.col.customer': 'Customer',
        'rep.col.unit': 'Unit',
        'rep.col.contact': 'Phone',
        'rep.col.room': 'Room / address',
        'rep.col.channel': 'Channel',
        'rep.col.type': 'Type',
        'rep.col.matter': 'Matter',
        'rep.col.responder': 'First responder',
        'rep.col.handling': 'Handling',
        'rep.col.status': 'Status',
        'rep.col.result': 'Result',
        'rep.handling.onspot': 'resolved on the spot by {who}',
        'rep.handling.dept': 'with {dept}',
        'rep.handling.owner': 'owner {who}',
        'rep.handling.transfers': '{n} transfer(s)',
        'rep.esc': 'escalated: {level}',
        'rep.open-case': 'Open the case',
        'rep.retry': 'Retry',
        'rep.csv': 'Export CSV (Excel)',
        'rep.forbidden': 'Only QA, supervisors and managers see this.',
        'rep.lost': 'Lost connection: this did not load. Check the network and press Retry.',
        'rep.more': 'Only the first {n} are shown.',
        'rep.comma': ', ',
    },
});

// ------------------------------------------------------------------ shared

/** A YYYY-MM-DD date moved by n days (calendar arithmetic, no time zone). */
export function addDays(date, n) {
    const [y, m, d] = date.split('-').map(Number);
    return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

/** The last day of the month of a YYYY-MM-DD date. */
export function monthEnd(date) {
    const [y, m] = date.split('-').map(Number);
    return new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10);
}

/** True for a well-formed YYYY-MM-DD that is a real date. */
export function isDate(s) {
    return /^\d{4}-\d{2}-\d{2}$/.test(s || '') && addDays(s, 0) === s;
}

/**
 * Shows an error a person can act on inside `box` (emptied first): 403 says
 * who may see the reports, a lost connection says so, anything else is
 * util.js's box (the human message and the server's reason, never JSON).
 * With `retry`, a Retry button calls it (not for 403: retrying will not help).
 */
export function problem(box, err, retry) {
    clear(box);
    let shown = err;
    if (err instanceof ApiError && (err.status === 403 || err.status === 0)) {
        shown = new ApiError(err.status, err.reason);
        shown.message = t(err.status === 403 ? 'rep.forbidden' : 'rep.lost');
    }
    showError(box, shown);
    if (retry && !(err instanceof ApiError && err.status === 403)) {
        const again = () => {
            loading(box);
            retry();
        };
        box.appendChild(el('button', { type: 'button', class: 'btn btn-small rep-retry', on: { click: again } }, t('rep.retry')));
    }
}

/** A "loading…" line for a section about to be filled. */
export function loading(box) {
    clear(box).appendChild(el('p', { class: 'rep-loading muted' }, t('common.loading')));
}

/** A staff member's name for a label (the code when unknown); '' for none. */
export function nameOf(dir, code) {
    const p = code && dir.person(code);
    return p ? p.name : code || '';
}

/** A department's name for a label (the code when unknown); '' for none. */
export function deptOf(dir, code) {
    const d = code && dir.dept(code);
    return d ? d.name : code || '';
}

/**
 * A list of case rows (util.js's caseRow: `case-row`, data-case-id,
 * data-number, clocks), each escalated one badged with its level; or the
 * empty state's sentence.
 */
export function caseList(cases, dir, emptyText) {
    if (!cases.length) return el('p', { class: 'empty rep-empty' }, emptyText);
    return el('ul', { class: 'case-list' }, cases.map((c) => caseRow(c, dir, {
        badge: c.escalation_level && c.escalation_level !== 'none'
            ? t('rep.esc', { level: t(`esc.${c.escalation_level}`) }) : null,
    })));
}

// The statuses of a case still being worked on (a resolved case waits only
// for its callback; closed, unresolvable and referred-out ones are done).
const OPEN_STATUSES = 'registered,assigned,transferred,accepted,in_progress,waiting';
const ESC_ORDER = { leader: 3, manager: 2, supervisor: 1 };

/**
 * The open cases above escalation level none, highest level first, then
 * oldest first: up to `pages` pages of 200 (the list filters on the level).
 * @param {string[]} [levels] only these levels (default: all above none)
 * @returns {Promise<{cases: Object[], partial: boolean, checked: number}>}
 *          partial: more open cases exist than were checked
 */
export async function escalatedCases(levels, pages = 5) {
    const want = new Set(levels || ['supervisor', 'manager', 'leader']);
    const out = [];
    let after = null;
    let checked = 0;
    for (let p = 0; p < pages; p++) {
        const page = await api('GET', `/v1/cases?status=${OPEN_STATUSES}&escalation_level=${[...want].join(',')}`
            + `&limit=200${after ? `&after=${enc(after)}` : ''}`);
        checked += page.cases.length;
        out.push(...page.cases);
        after = page.next;
        if (!after) break;
    }
    out.sort((a, b) => (ESC_ORDER[b.escalation_level] - ESC_ORDER[a.escalation_level])
        || a.created_at.localeCompare(b.created_at));
    return { cases: out, partial: !!after, checked };
}

/**
 * The cases of the given numbers, as the case list has them (the reports
 * name cases by number, without ids). A number is <site>-<yyyymmdd>-<seq>,
 * so one text search per distinct <site>-<yyyymmdd> finds a day's cases (up
 * to 3 pages of 200, at most 10 days). Numbers not found are left out and a
 * failed search leaves the map partial: those rows then do not link.
 * @returns {Promise<Map<string, Object>>} number -> CaseSummary
 */
export async function casesByNumber(numbers) {
    const found = new Map();
    const prefixes = new Set();
    for (const n of numbers) {
        const i = String(n).lastIndexOf('-');
        if (i > 0) prefixes.add(String(n).slice(0, i));
    }
    await Promise.allSettled([...prefixes].slice(0, 10).map(async (prefix) => {
        let after = null;
        for (let p = 0; p < 3; p++) {
            const page = await api('GET', `/v1/cases?text=${enc(prefix)}&limit=200${after ? `&after=${enc(after)}` : ''}`);
            for (const c of page.cases) found.set(c.number, c);
            after = page.next;
            if (!after) break;
        }
    }));
    return found;
}

/**
 * A report section: a heading (with controls beside it), a hint line and a
 * body to fill; the test id on the <section>.
 * @returns {{el: HTMLElement, body: HTMLElement}}
 */
export function section(testid, title, hint, controls) {
    const body = el('div', { class: 'rep-body' });
    const sec = el('section', { class: 'rep-section', testid },
        el('div', { class: 'rep-section-head' }, el('h2', {}, title), controls || null),
        hint ? el('p', { class: 'rep-hint muted' }, hint) : null,
        body);
    return { el: sec, body };
}

// ------------------------------------------------------------------ the log

/**
 * The server's handling text ("resolved on the spot by li.desk", "with
 * engineering, owner wu.tech, 1 transfer(s)") in the reader's language and
 * with names. The report gives only that English sentence, so it is parsed
 * here; a sentence of another shape is shown as it came.
 */
function handlingText(s, dir) {
    let m = /^resolved on the spot by (\S+)$/.exec(s || '');
    if (m) return t('rep.handling.onspot', { who: nameOf(dir, m[1]) });
    const out = [];
    for (const part of String(s || '').split(', ')) {
        if ((m = /^with (\S+)$/.exec(part))) out.push(t('rep.handling.dept', { dept: deptOf(dir, m[1]) }));
        else if ((m = /^owner (\S+)$/.exec(part))) out.push(t('rep.handling.owner', { who: nameOf(dir, m[1]) }));
        else if ((m = /^(\d+) transfer\(s\)$/.exec(part))) out.push(t('rep.handling.transfers', { n: m[1] }));
        else return s; // not the shape known here: the server's words
    }
    return out.join(t('rep.comma'));
}

// The columns of the paper form 《接待业主情况记录》, in its order.
const LOG_COLUMNS = ['time', 'number', 'customer', 'unit', 'contact', 'room', 'channel', 'type', 'matter',
    'responder', 'handling', 'status', 'result'];

/** A log row's cells as text, in LOG_COLUMNS order (the table and the CSV). */
function logCells(r, dir) {
    return [
        r.time, r.number, r.customer, r.unit || '', r.contact, r.room,
        r.channel ? t(`channel.${r.channel}`) : '', r.type ? t(`type.${r.type}`) : '', r.matter,
        nameOf(dir, r.first_responder), handlingText(r.handling, dir),
        r.status ? t(`status.${r.status}`) : '', r.result,
    ];
}

// The log on screen: the form's columns, some stacked in one cell so that
// the table fits a page (the CSV keeps every column apart).
const SCREEN_COLUMNS = ['time', 'customer', 'type', 'matter', 'responder', 'handling', 'status', 'result'];

/** Lines in one cell, empty ones left out (one box: a phone's card puts it beside the label). */
const lines = (...xs) => el('div', {}, xs.filter((x) => x !== null && x !== undefined && x !== '')
    .map((x, i) => el('div', { class: i === 0 ? 'rep-line1' : 'rep-line' }, x)));

/**
 * The reception log as a table (each row a card on a phone, by CSS, with
 * the column name from data-label); a number links to its case when found.
 */
function logTable(log, dir, byNumber) {
    const label = (k) => t(['time', 'customer', 'type'].includes(k) ? `rep.head.${k}` : `rep.col.${k}`);
    const head = el('tr', {}, SCREEN_COLUMNS.map((k) => el('th', { scope: 'col' }, label(k))));
    const rows = log.rows.map((r) => {
        const c = byNumber.get(r.number);
        const [time, number, customer, unit, contact, room, channel, type, matter, responder, handling, status, result] =
            logCells(r, dir);
        const num = c ? el('a', { href: `#/case/${enc(c.id)}` }, number) : number;
        const cells = {
            time: lines(time, num),
            customer: lines(customer, unit, contact, room),
            type: lines(type, channel),
            matter: matter,
            responder: responder,
            handling: handling,
            status: status,
            result: result,
        };
        return el('tr', { testid: 'log-row', dataset: { number: r.number, caseId: c ? c.id : '', status: r.status } },
            SCREEN_COLUMNS.map((k) => el('td', { class: `rep-col-${k}`, 'data-label': label(k) }, cells[k])));
    });
    return el('div', { class: 'rep-table-wrap' },
        el('table', { class: 'rep-table rep-log' }, el('thead', {}, head), el('tbody', {}, rows)));
}

// ------------------------------------------------------------------ the view

const REFRESH_MS = 60000;

/**
 * Renders the supervisor's page into `root`. The lists (and today's log)
 * are read again on live case events (after a burst settles) and every
 * 60 s; the clocks tick by util.js's ticker.
 * @returns {Function} cleanup: stops the timer and the event subscription
 */
export async function render(root, ctx) {
    const today = siteToday();
    let day = today;

    const dateInput = el('input', { type: 'date', value: day, max: today, 'aria-label': t('sup.log.date'),
        testid: 'sup-log-date' });
    const todayBtn = el('button', { type: 'button', class: 'btn btn-small' }, t('sup.log.today'));
    const csvBtn = el('button', { type: 'button', class: 'btn btn-small', testid: 'sup-log-csv', disabled: true },
        t('rep.csv'));
    const log = section('sup-reception-log', t('sup.log'), t('sup.log.hint'),
        el('div', { class: 'rep-controls' }, dateInput, todayBtn, csvBtn));
    const overdue = section('sup-overdue', t('sup.overdue'), t('sup.overdue.hint'));
    const escalated = section('sup-escalated', t('sup.escalated'), t('sup.escalated.hint'));

    root.appendChild(el('div', { class: 'rep-page' },
        el('div', { class: 'view-head' }, el('h1', {}, t('sup.title'))),
        el('div', { class: 'rep-lists' }, overdue.el, escalated.el),
        log.el));
    for (const s of [log, overdue, escalated]) loading(s.body);

    const dir = await directoryOrEmpty();
    let lastLog = null; // what the CSV button writes
    let gone = false; // the view was left: late answers are dropped

    async function loadLog() {
        const asked = day;
        try {
            const q = asked === today ? '' : `?date=${asked}`;
            const data = await api('GET', sitePath(`reports/reception-log${q}`));
            const byNumber = data.rows.length ? await casesByNumber(data.rows.map((r) => r.number)) : new Map();
            if (gone || asked !== day) return;
            lastLog = data;
            csvBtn.disabled = data.rows.length === 0;
            clear(log.body).appendChild(data.rows.length
                ? el('div', {}, el('p', { class: 'rep-count muted' }, t('sup.log.count', { n: data.rows.length })),
                    logTable(data, dir, byNumber))
                : el('p', { class: 'empty rep-empty' }, t('sup.log.empty')));
        } catch (err) {
            if (!gone && asked === day) {
                lastLog = null;
                csvBtn.disabled = true;
                problem(log.body, err, loadLog);
            }
        }
    }

    async function loadOverdue() {
        try {
            const page = await api('GET', '/v1/cases?overdue=true&limit=200');
            if (gone) return;
            clear(overdue.body).appendChild(caseList(page.cases, dir, t('sup.overdue.empty')));
            if (page.next) overdue.body.appendChild(el('p', { class: 'more' }, t('rep.more', { n: page.cases.length })));
        } catch (err) {
            if (!gone) problem(overdue.body, err, loadOverdue);
        }
    }

    async function loadEscalated() {
        try {
            const res = await escalatedCases();
            if (gone) return;
            clear(escalated.body).appendChild(caseList(res.cases, dir, t('sup.escalated.empty')));
            if (res.partial) {
                escalated.body.appendChild(el('p', { class: 'more' }, t('sup.escalated.partial', { n: res.checked })));
            }
        } catch (err) {
            if (!gone) problem(escalated.body, err, loadEscalated);
        }
    }

    // A past day's log does not change by the minute; today's does.
    const loadAll = () => Promise.all([loadOverdue(), loadEscalated(), day === today ? loadLog() : null]);

    function showDay(d) {
        day = d;
        dateInput.value = d;
        loading(log.body);
        loadLog();
    }
    dateInput.addEventListener('change', () => {
        if (isDate(dateInput.value) && dateInput.value <= today) showDay(dateInput.value);
    });
    todayBtn.addEventListener('click', () => showDay(today));
    csvBtn.addEventListener('click', () => {
        if (!lastLog) return;
        const rows = [LOG_COLUMNS.map((k) => t(`rep.col.${k}`))];
        for (const r of lastLog.rows) rows.push(logCells(r, dir));
        downloadCsv(`reception-log-${lastLog.site}-${lastLog.date}.csv`, rows);
    });

    await Promise.all([loadLog(), loadOverdue(), loadEscalated()]);

    const refresh = debounce(loadAll, 1500);
    const unsubscribe = onCaseEvent(refresh);
    const timer = setInterval(loadAll, REFRESH_MS);
    return () => {
        gone = true;
        refresh.cancel();
        clearInterval(timer);
        unsubscribe();
    };
}
