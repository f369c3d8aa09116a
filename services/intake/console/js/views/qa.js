// The quality-inspection page (质检, `#/qa`): the QA report of a period as
// charts people can take in at a glance — the rates (first-contact
// resolution, handoff, answer, resolution and callback in time,
// satisfaction), conflict escalations per department, violations per
// person, and how many times cases were transferred — each with a compact
// table under it, and one CSV file (UTF-8 with a BOM, for Excel) holding
// every figure shown.
//
// The report is GET /v1/sites/{site}/reports/qa?from=&to=[&department=]
// (manager, supervisor and QA tokens; audit's roll-ups). qaSections() is
// exported for the manager's weekly review, which carries the same report.

import { api, directoryOrEmpty, enc, sitePath } from '../api.js';
import { addMessages, has, t } from '../i18n.js';
import { downloadCsv, el, fmtDuration, siteToday } from '../util.js';
import { hbarChart, pct, vbarChart } from '../chart.js';
import { addDays, deptOf, isDate, loading, monthEnd, nameOf, problem } from './supervisor.js';

addMessages({
    zh: {
        'qa.title': '质检报表',
        'qa.period': '统计期间',
        'qa.from': '从',
        'qa.to': '到',
        'qa.this-month': '本月',
        'qa.last-month': '上月',
        'qa.department': '部门',
        'qa.all-departments': '全部部门',
        'qa.csv': '导出 CSV（Excel）',
        'qa.bad-period': '请选择有效的日期：开始不晚于结束，最长 366 天。',
        'qa.no-cases': '这段时间没有登记的事项，比率暂无数据。',
        'qa.hint': '事项按登记日期计入，违规按发生日期计入。',
        'qa.kpi.cases': '登记事项',
        'qa.kpi.resolved': '已办结',
        'qa.kpi.open': '未办结',
        'qa.kpi.unresolvable': '无法解决关闭',
        'qa.kpi.referred_out': '引导至外部',
        'qa.kpi.p50': '办结用时（中位）',
        'qa.kpi.p90': '办结用时（90%）',
        'qa.kpi.escalations': '升级次数',
        'qa.kpi.violations': '违规 / 扣分',
        'qa.rates': '考核比率',
        'qa.rates.hint': '时限按本项目设置（默认：转办 1 小时，答复 1 个工作日，回访 2 天）。',
        'qa.rate.first_contact_resolution': '首问当场办结率',
        'qa.rate.handoff_within_limit': '按时转办率',
        'qa.rate.answer_within_limit': '1个工作日内答复率',
        'qa.rate.resolution_within_limit': '按时办结率',
        'qa.rate.callback_within_limit': '按时回访率',
        'qa.rate.satisfaction': '满意率',
        'qa.bar.first_contact_resolution': '首问当场办结',
        'qa.bar.handoff_within_limit': '按时转办',
        'qa.bar.answer_within_limit': '1个工作日内答复',
        'qa.bar.resolution_within_limit': '按时办结',
        'qa.bar.callback_within_limit': '按时回访',
        'qa.bar.satisfaction': '满意率',
        'qa.rate.response_rate': '响应率',
        'qa.rate.resolution_rate': '解决率',
        'qa.rate.unresolvable_rate': '无法解决率',
        'qa.col.rate': '比率',
        'qa.col.value': '数值',
        'qa.col.of': '分子/分母',
        'qa.col.department': '部门',
        'qa.col.person': '人员',
        'qa.col.count': '次数',
        'qa.col.points': '扣分',
        'qa.col.kind': '违规类型',
        'qa.col.transfers': '转办次数',
        'qa.col.cases': '事项数',
        'qa.satisfaction': '回访满意度',
        'qa.conflicts': '矛盾升级（按部门）',
        'qa.conflicts.hint': '投诉升级到质检、副总或总经理的，计入原部门。',
        'qa.conflicts.empty': '这段时间没有矛盾升级。',
        'qa.violations': '违规（按人员）',
        'qa.violations.empty': '这段时间没有违规记录。',
        'qa.violations.kinds': '违规类型',
        'qa.transfers': '每件事项的转办次数',
        'qa.transfers.axis': '转办次数',
        'qa.transfers.b0': '0 次',
        'qa.transfers.b1': '1 次',
        'qa.transfers.b2': '2 次',
        'qa.transfers.b3': '3 次及以上',
        'qa.transfers.per_case': '平均每件转办',
        'qa.transfers.total': '转办总次数',
        'qa.transfers.most': '单件最多转办',
        'qa.transfers.bounced': '被推诿的事项（转办 2 次以上或被退回）',
        'qa.transfers.returns': '退回次数',
        'qa.transfers.reopened': '重新打开次数',
        'qa.transfers.empty': '这段时间没有登记的事项。',
        'qa.esc.supervisor': '升级到主管',
        'qa.esc.manager': '升级到经理',
        'qa.esc.leader': '升级到领导',
        'qa.csv.section': '部分',
        'qa.csv.item': '项目',
        'qa.csv.value': '数值',
        'qa.csv.detail': '说明',
        'qa.csv.period': '统计期间',
        'qa.csv.site': '项目',
        'qa.csv.department': '部门',
        'qa.csv.summary': '概况',
        'qa.count': '{n} 次',
        'vio.late_handoff': '转办超时',
        'vio.late_appointment': '未及时指派经办人',
        'vio.late_first_contact': '未及时联系客户',
        'vio.late_resolution': '未按时办结',
        'vio.no_callback': '未回访',
        'vio.transfer_refused': '拒收转办',
        'vio.transfer_bounced': '推诿（踢皮球）',
        'vio.info_not_given_at_once': '未一次性告知',
        'vio.attitude_complaint': '态度投诉',
        'vio.conflict_escalation': '矛盾升级',
    },
    en: {
        'qa.title': 'QA report',
        'qa.period': 'Period',
        'qa.from': 'From',
        'qa.to': 'To',
        'qa.this-month': 'This month',
        'qa.last-month': 'Last month',
        'qa.department': 'Department',
        'qa.all-departments': 'All departments',
        'qa.csv': 'Export CSV (Excel)',
        'qa.bad-period': 'Choose valid dates: the start no later than the end, at most 366 days.',
        'qa.no-cases': 'No case was registered in this period; the rates have no data.',
        'qa.hint': 'Cases count by the date they were registered, violations by the date they occurred.',
        'qa.kpi.cases': 'Cases',
        'qa.kpi.resolved': 'Resolved',
        'qa.kpi.open': 'Open',
        'qa.kpi.unresolvable': 'Closed unresolvable',
        'qa.kpi.referred_out': 'Referred out',
        'qa.kpi.p50': 'Time to resolve (median)',
        'qa.kpi.p90': 'Time to resolve (90%)',
        'qa.kpi.escalations': 'Escalations',
        'qa.kpi.violations': 'Violations / points',
        'qa.rates': 'Rates',
        'qa.rates.hint': "Limits are the site's settings (defaults: handoff 1 hour, answer 1 working day, callback 2 days).",
        'qa.rate.first_contact_resolution': 'First-contact resolution',
        'qa.rate.handoff_within_limit': 'Handoff in time',
        'qa.rate.answer_within_limit': 'Answer within 1 working day',
        'qa.rate.resolution_within_limit': 'Resolved in time',
        'qa.rate.callback_within_limit': 'Callback in time',
        'qa.rate.satisfaction': 'Satisfaction',
        'qa.bar.first_contact_resolution': 'On the spot',
        'qa.bar.handoff_within_limit': 'Handoff in time',
        'qa.bar.answer_within_limit': 'Answer in 1 day',
        'qa.bar.resolution_within_limit': 'Resolved in time',
        'qa.bar.callback_within_limit': 'Callback in time',
        'qa.bar.satisfaction': 'Satisfaction',
        'qa.rate.response_rate': 'Response rate',
        'qa.rate.resolution_rate': 'Resolution rate',
        'qa.rate.unresolvable_rate': 'Unresolvable rate',
        'qa.col.rate': 'Rate',
        'qa.col.value': 'Value',
        'qa.col.of': 'Of',
        'qa.col.department': 'Department',
        'qa.col.person': 'Person',
        'qa.col.count': 'Count',
        'qa.col.points': 'Points',
        'qa.col.kind': 'Kind',
        'qa.col.transfers': 'Transfers',
        'qa.col.cases': 'Cases',
        'qa.satisfaction': 'Satisfaction at callback',
        'qa.conflicts': 'Conflict escalations per department',
        'qa.conflicts.hint': 'A complaint that reaches QA, a deputy GM or the GM counts against the department it came from.',
        'qa.conflicts.empty': 'No conflict escalation in this period.',
        'qa.violations': 'Violations per person',
        'qa.violations.empty': 'No violation in this period.',
        'qa.violations.kinds': 'Violations by kind',
        'qa.transfers': 'Transfers per case',
        'qa.transfers.axis': 'transfers',
        'qa.transfers.b0': '0',
        'qa.transfers.b1': '1',
        'qa.transfers.b2': '2',
        'qa.transfers.b3': '3+',
        'qa.transfers.per_case': 'Transfers per case',
        'qa.transfers.total': 'Transfers in all',
        'qa.transfers.most': 'Most transfers of one case',
        'qa.transfers.bounced': 'Bounced cases (2+ transfers or a return)',
        'qa.transfers.returns': 'Returns',
        'qa.transfers.reopened': 'Reopened',
        'qa.transfers.empty': 'No case was registered in this period.',
        'qa.esc.supervisor': 'to the supervisor',
        'qa.esc.manager': 'to the manager',
        'qa.esc.leader': 'to a leader',
        'qa.csv.section': 'Section',
        'qa.csv.item': 'Item',
        'qa.csv.value': 'Value',
        'qa.csv.detail': 'Detail',
        'qa.csv.period': 'Period',
        'qa.csv.site': 'Site',
        'qa.csv.department': 'Department',
        'qa.csv.summary': 'Summary',
        'qa.count': '{n}',
        'vio.late_handoff': 'Late handoff',
        'vio.late_appointment': 'Handler not appointed in time',
        'vio.late_first_contact': 'Customer not contacted in time',
        'vio.late_resolution': 'Not resolved in time',
        'vio.no_callback': 'No callback',
        'vio.transfer_refused': 'Transfer refused',
        'vio.transfer_bounced': 'Transfer bounced',
        'vio.info_not_given_at_once': 'Information not given in one go',
        'vio.attitude_complaint': 'Attitude complaint',
        'vio.conflict_escalation': 'Conflict escalation',
    },
});

// ------------------------------------------------------------------ figures

/** "a/b", or "" when the denominator is unknown. */
const frac = (a, b) => (typeof a === 'number' && typeof b === 'number' ? `${a}/${b}` : '');

/** A number of seconds as a duration ("4小时15分"); "—" for null. */
const seconds = (s) => (s === null || s === undefined ? '—' : fmtDuration(s * 1000));

/** A rate's label. */
const rateLabel = (key) => t(`qa.rate.${key}`);

/** A violation kind's name; a kind added to the API later shows as it is named there. */
const kindLabel = (k) => (has(`vio.${k}`) ? t(`vio.${k}`) : k);

/**
 * The six assessed rates of a QA report, each with its numerator and
 * denominator as the README defines them (so the table can say "3/4").
 * @returns {Array<{key, label, short, value: ?number, note: string}>}
 *          short: the label beside a bar; label: the table's and the CSV's
 */
export function rateItems(r) {
    const o = r.outcomes || {};
    const s = r.satisfaction || {};
    const sat = (s.satisfied || 0) + (s.basically_satisfied || 0);
    const fcr = r.first_contact_resolution || {};
    const hw = r.handoff_within_limit || {};
    const aw = r.answer_within_limit || {};
    const rw = r.resolution_within_limit || {};
    const cw = r.callback_within_limit || {};
    return [
        ['first_contact_resolution', fcr.rate, frac(fcr.cases, r.cases)],
        ['handoff_within_limit', hw.rate, frac(hw.in_time, hw.handoffs)],
        ['answer_within_limit', aw.rate, frac(aw.answered_in_time, r.cases)],
        ['resolution_within_limit', rw.rate, frac(rw.resolved_in_time, o.resolved)],
        ['callback_within_limit', cw.rate, frac(cw.in_time, cw.callbacks_due)],
        ['satisfaction', (r.hotline_rates || {}).satisfaction_rate, frac(sat, sat + (s.unsatisfied || 0))],
    ].map(([key, value, note]) => ({
        key, label: rateLabel(key), short: t(`qa.bar.${key}`), value: typeof value === 'number' ? value : null, note,
    }));
}

/** The other rates the report gives (the hotline's three minus satisfaction, unresolvable). */
function otherRates(r) {
    const hr = r.hotline_rates || {};
    const o = r.outcomes || {};
    return [
        ['response_rate', hr.response_rate, ''],
        ['resolution_rate', hr.resolution_rate, frac(o.resolved, r.cases)],
        ['unresolvable_rate', r.unresolvable_rate, frac(o.unresolvable, r.cases)],
    ].map(([key, value, note]) => ({ key, label: rateLabel(key), value: typeof value === 'number' ? value : null, note }));
}

// A figure a table cell right-aligns: a count, a rate, "3/4", "—".
const NUMERIC = /^[-+]?[\d.,/%\s—]+$/;

/** A compact table: head labels and rows of cells (the first a row heading). */
function miniTable(head, rows, cls) {
    return el('table', { class: `rep-mini ${cls || ''}`.trim() }, [
        el('thead', {}, [el('tr', {}, head.map((x) => el('th', { scope: 'col' }, [x])))]),
        el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c, i) => (i === 0
            ? el('th', { scope: 'row' }, c)
            : el('td', { class: NUMERIC.test(c) ? 'num' : null }, c)))))),
    ]);
}

/** A chart with its heading, an optional hint and the table under it. */
function figure(title, hint, chart, table) {
    return el('figure', { class: 'rep-figure' }, [
        el('figcaption', {}, [el('h3', {}, [title]), hint ? el('p', { class: 'rep-hint' }, [hint]) : null]),
        el('div', { class: 'rep-chart' }, [chart]),
        table || null,
    ]);
}

/**
 * The QA report drawn: key figures, then the rates, conflict escalations,
 * violations and transfers charts (data-testid `${prefix}rates`,
 * `${prefix}conflicts`, `${prefix}violations`, `${prefix}transfers`), each
 * with a small table; and the same figures as CSV rows.
 * @param {Object} r a QaReport
 * @param {Object} dir directory() for names
 * @param {string} prefix test id prefix: 'qa-chart-' or 'mgr-chart-'
 * @returns {{el: HTMLElement, csv: Array<Array<*>>}}
 */
export function qaSections(r, dir, prefix) {
    const csv = [];
    const add = (section, item, value, detail) => csv.push([section, item, value ?? '', detail ?? '']);
    const o = r.outcomes || {};
    const esc = r.escalations || {};
    const vio = r.violations || {};
    const tr = r.transfers || {};

    // Key figures.
    const summary = t('qa.csv.summary');
    const kpis = [
        ['cases', r.cases],
        ['resolved', o.resolved],
        ['open', o.open],
        ['unresolvable', o.unresolvable],
        ['referred_out', o.referred_out],
        ['p50', seconds(r.resolution_time_s && r.resolution_time_s.p50)],
        ['p90', seconds(r.resolution_time_s && r.resolution_time_s.p90)],
        ['escalations', (esc.supervisor || 0) + (esc.manager || 0) + (esc.leader || 0)],
        ['violations', `${vio.count || 0} / ${vio.points || 0}`],
    ];
    const kpiEl = el('dl', { class: 'rep-kpis' }, kpis.map(([k, v]) => el('div', { class: 'rep-kpi', 'data-kpi': k }, [
        el('dt', {}, [t(`qa.kpi.${k}`)]), el('dd', {}, [String(v ?? 0)]),
    ])));
    for (const [k, v] of kpis) add(summary, t(`qa.kpi.${k}`), v);
    for (const lvl of ['supervisor', 'manager', 'leader']) add(summary, t(`qa.esc.${lvl}`), esc[lvl] || 0);

    // Rates.
    const rates = rateItems(r);
    const others = otherRates(r);
    const rateSection = t('qa.rates');
    for (const it of [...rates, ...others]) add(rateSection, it.label, it.value === null ? '' : pct(it.value), it.note);
    const sat = r.satisfaction || {};
    const satKeys = ['satisfied', 'basically_satisfied', 'unsatisfied', 'unreachable'];
    for (const k of satKeys) add(t('qa.satisfaction'), t(`satisfaction.${k}`), sat[k] || 0);
    const ratesFig = figure(rateSection, t('qa.rates.hint'),
        hbarChart({ title: rateSection, desc: rates.map((i) => `${i.label} ${pct(i.value)}`).join('; '),
            testid: `${prefix}rates`, items: rates.map((i) => ({ ...i, label: i.short, long: i.label })), rate: true }),
        el('div', { class: 'rep-tables' }, [
            miniTable([t('qa.col.rate'), t('qa.col.value'), t('qa.col.of')],
                [...rates, ...others].map((i) => [i.label, pct(i.value), i.note || '—'])),
            miniTable([t('qa.satisfaction'), t('qa.col.cases')], satKeys.map((k) => [t(`satisfaction.${k}`), String(sat[k] || 0)])),
        ]));

    // Conflict escalations per department, most first.
    const conflicts = Object.entries(r.conflict_escalations || {})
        .map(([code, n]) => ({ key: code, label: deptOf(dir, code), value: n }))
        .sort((a, b) => b.value - a.value || a.label.localeCompare(b.label));
    const confTitle = t('qa.conflicts');
    for (const c of conflicts) add(confTitle, c.label, c.value, c.key);
    const confFig = figure(confTitle, t('qa.conflicts.hint'),
        hbarChart({ title: confTitle, desc: conflicts.map((c) => `${c.label} ${c.value}`).join('; ') || t('qa.conflicts.empty'),
            testid: `${prefix}conflicts`, items: conflicts, empty: t('qa.conflicts.empty') }),
        conflicts.length ? miniTable([t('qa.col.department'), t('qa.col.count')], conflicts.map((c) => [c.label, String(c.value)])) : null);

    // Violations per person (the report orders them by points, then count).
    const people = (r.violations_by_person || []).map((p) => ({
        key: p.staff || p.department || '',
        label: p.staff ? nameOf(dir, p.staff) : deptOf(dir, p.department) || '—',
        value: p.count,
        note: `${t('qa.col.points')} ${p.points ?? 0}`,
        dept: deptOf(dir, p.department),
        points: p.points ?? 0,
    }));
    const vioTitle = t('qa.violations');
    for (const p of people) add(vioTitle, p.label, p.value, `${p.key}; ${p.dept}; ${p.note}`);
    const kinds = Object.entries(vio.by_kind || {}).sort((a, b) => b[1] - a[1]);
    for (const [k, n] of kinds) add(t('qa.violations.kinds'), kindLabel(k), n, k);
    const vioFig = figure(vioTitle, null,
        hbarChart({ title: vioTitle, desc: people.map((p) => `${p.label} ${p.value}`).join('; ') || t('qa.violations.empty'),
            testid: `${prefix}violations`, items: people, empty: t('qa.violations.empty') }),
        people.length || kinds.length ? el('div', { class: 'rep-tables' }, [
            people.length ? miniTable([t('qa.col.person'), t('qa.col.department'), t('qa.col.count'), t('qa.col.points')],
                people.map((p) => [p.label, p.dept, String(p.value), String(p.points)])) : null,
            kinds.length ? miniTable([t('qa.col.kind'), t('qa.col.count')], kinds.map(([k, n]) => [kindLabel(k), String(n)])) : null,
        ]) : null);

    // Transfers per case: the distribution, and the bounced cases beside it.
    const buckets = [['none', 'b0'], ['one', 'b1'], ['two', 'b2'], ['three_or_more', 'b3']]
        .map(([field, b]) => ({ key: field, label: t(`qa.transfers.${b}`), value: tr[field] ?? 0 }));
    const trTitle = t('qa.transfers');
    for (const b of buckets) add(trTitle, `${t('qa.col.transfers')} ${b.label}`, b.value);
    const trFacts = [
        ['per_case', typeof tr.per_case === 'number' ? tr.per_case.toFixed(2) : '—'],
        ['total', tr.total ?? 0],
        ['most', tr.most ?? 0],
        ['bounced', tr.bounced_cases ?? 0],
        ['returns', tr.returns ?? 0],
        ['reopened', tr.reopened ?? 0],
    ];
    for (const [k, v] of trFacts) add(trTitle, t(`qa.transfers.${k}`), v);
    const trFig = figure(trTitle, null,
        vbarChart({ title: trTitle, desc: buckets.map((b) => `${b.label}: ${b.value}`).join('; '),
            testid: `${prefix}transfers`, items: r.cases ? buckets : [], axisTitle: t('qa.transfers.axis'),
            empty: t('qa.transfers.empty') }),
        miniTable([trTitle, t('qa.col.value')], trFacts.map(([k, v]) => [t(`qa.transfers.${k}`), String(v)])));

    const report = el('div', { class: 'rep-report' }, [
        r.cases ? null : el('p', { class: 'rep-empty' }, [t('qa.no-cases')]),
        kpiEl,
        el('div', { class: 'rep-figures' }, [ratesFig, confFig, vioFig, trFig]),
    ]);
    return { el: report, csv };
}

/** The CSV's opening rows: what the file is (site, period, department). */
export function csvHead(r) {
    const rows = [[t('qa.csv.section'), t('qa.csv.item'), t('qa.csv.value'), t('qa.csv.detail')]];
    rows.push([t('qa.csv.summary'), t('qa.csv.site'), r.site, '']);
    rows.push([t('qa.csv.summary'), t('qa.csv.period'), `${r.from} ~ ${r.to}`, '']);
    if (r.department) rows.push([t('qa.csv.summary'), t('qa.csv.department'), r.department, '']);
    return rows;
}

// ------------------------------------------------------------------ the view

/** The period from/to is usable: both dates, in order, at most 366 days. */
function periodOk(from, to) {
    if (!isDate(from) || !isDate(to) || from > to) return false;
    return addDays(from, 365) >= to;
}

/**
 * Renders the QA page: the period (default this month, in the site's time
 * zone), an optional department, the report's charts and the CSV button.
 */
export async function render(root, ctx) {
    const today = siteToday();
    let from = `${today.slice(0, 8)}01`;
    let to = monthEnd(today);
    let department = '';

    const fromIn = el('input', { type: 'date', name: 'from', value: from, 'data-testid': 'qa-from' });
    const toIn = el('input', { type: 'date', name: 'to', value: to, 'data-testid': 'qa-to' });
    const thisMonth = el('button', { type: 'button', class: 'btn btn-small' }, [t('qa.this-month')]);
    const lastMonth = el('button', { type: 'button', class: 'btn btn-small' }, [t('qa.last-month')]);
    const deptSel = el('select', { name: 'department', 'data-testid': 'qa-department', 'aria-label': t('qa.department') },
        [el('option', { value: '' }, [t('qa.all-departments')])]);
    const csvBtn = el('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'qa-csv', disabled: true }, [t('qa.csv')]);
    const periodMsg = el('p', { class: 'rep-field-error', role: 'alert', hidden: true }, [t('qa.bad-period')]);
    const body = el('div', { class: 'rep-body', 'aria-live': 'polite' });

    root.replaceChildren(el('div', { class: 'rep-page' }, [
        el('h1', {}, [t('qa.title')]),
        el('div', { class: 'rep-toolbar' }, [
            el('fieldset', { class: 'rep-period', 'data-testid': 'qa-period' }, [
                el('legend', {}, [t('qa.period')]),
                el('label', {}, [el('span', {}, [t('qa.from')]), fromIn]),
                el('label', {}, [el('span', {}, [t('qa.to')]), toIn]),
                el('span', { class: 'rep-quick' }, [thisMonth, lastMonth]),
            ]),
            el('label', { class: 'rep-dept' }, [el('span', {}, [t('qa.department')]), deptSel]),
            csvBtn,
        ]),
        periodMsg,
        el('p', { class: 'rep-hint' }, [t('qa.hint')]),
        body,
    ]));

    const dir = await directoryOrEmpty();
    for (const d of dir.departments) if (d.active !== false) deptSel.append(el('option', { value: d.code }, d.name || d.code));

    let current = null; // {report, csv}: what the CSV button writes
    let seq = 0; // only the latest answer is drawn

    async function load() {
        const mine = ++seq;
        csvBtn.disabled = true;
        loading(body);
        try {
            const q = `from=${from}&to=${to}${department ? `&department=${enc(department)}` : ''}`;
            const report = await api('GET', sitePath(`reports/qa?${q}`));
            if (mine !== seq) return;
            const drawn = qaSections(report, dir, 'qa-chart-');
            current = { report, csv: drawn.csv };
            body.replaceChildren(drawn.el);
            csvBtn.disabled = false;
        } catch (err) {
            if (mine === seq) problem(body, err, load);
        }
    }

    function setPeriod(f, tt) {
        fromIn.value = f;
        toIn.value = tt;
        onPeriod();
    }

    function onPeriod() {
        if (!periodOk(fromIn.value, toIn.value)) {
            periodMsg.hidden = false;
            return;
        }
        periodMsg.hidden = true;
        from = fromIn.value;
        to = toIn.value;
        load();
    }

    fromIn.addEventListener('change', onPeriod);
    toIn.addEventListener('change', onPeriod);
    thisMonth.addEventListener('click', () => setPeriod(`${today.slice(0, 8)}01`, monthEnd(today)));
    lastMonth.addEventListener('click', () => {
        const end = addDays(`${today.slice(0, 8)}01`, -1);
        setPeriod(`${end.slice(0, 8)}01`, end);
    });
    deptSel.addEventListener('change', () => {
        department = deptSel.value;
        load();
    });
    csvBtn.addEventListener('click', () => {
        if (!current) return;
        const r = current.report;
        const name = `qa-${r.site}-${r.from}_${r.to}${r.department ? `-${r.department}` : ''}.csv`;
        downloadCsv(name, [...csvHead(r), ...current.csv]);
    });

    await load();
}
