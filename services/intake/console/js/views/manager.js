// The manager's page (经理, `#/manager`): the Monday review of a week's log
// (last week by default, Monday to Sunday, with a week picker), drawn with
// the QA charts; the week's cases still open; and the open cases escalated
// to the manager or a leader (open a week: the manager takes them over).
// Closing a case as unresolvable, with its written reason, is done on the
// case page (act-close_unresolvable), so every case here links there.
//
// Data: GET /v1/sites/{site}/reports/weekly-review?week=<any date of it>;
// the review's still-open cases carry numbers, not ids, so their ids (and
// their clocks) come from casesByNumber(); the escalated ones from
// escalatedCases() (the case list has no escalation filter).

import { api, directoryOrEmpty, onCaseEvent, sitePath } from '../api.js';
import { addMessages, t } from '../i18n.js';
import { caseRow, debounce, downloadCsv, el, fmtTime, siteToday } from '../util.js';
import { addDays, caseList, casesByNumber, escalatedCases, isDate, loading, problem, section } from './supervisor.js';
import { csvHead, qaSections } from './qa.js';

addMessages({
    zh: {
        'mgr.title': '经理',
        'mgr.weekly': '周例会：一周情况回顾',
        'mgr.weekly.range': '{from} 至 {to}',
        'mgr.week': '选择该周任意一天',
        'mgr.prev': '‹ 前一周',
        'mgr.next': '后一周 ›',
        'mgr.last-week': '上周',
        'mgr.csv': '导出 CSV（Excel）',
        'mgr.open': '这一周登记、仍未办结的事项',
        'mgr.open.hint': '确实无法解决的，请打开事项页面，点“无法解决，关闭”并写明理由。',
        'mgr.open.empty': '这一周登记的事项都已办结或关闭。',
        'mgr.open.unlinked': '（未找到此事项）',
        'mgr.escalated': '已升级到经理或领导的事项',
        'mgr.escalated.hint': '登记超过一周未办结的事项由经理接管、协调各部门。',
        'mgr.escalated.empty': '没有升级到经理或领导的未办结事项。',
        'mgr.csv.open': '仍未办结',
    },
    en: {
        'mgr.title': 'Manager',
        'mgr.weekly': 'Monday review of a week',
        'mgr.weekly.range': '{from} to {to}',
        'mgr.week': 'Any day of the week',
        'mgr.prev': '‹ Previous week',
        'mgr.next': 'Next week ›',
        'mgr.last-week': 'Last week',
        'mgr.csv': 'Export CSV (Excel)',
        'mgr.open': 'Registered that week and still open',
        'mgr.open.hint': 'If one truly cannot be resolved, open it and use "Close as unresolvable" with the reason.',
        'mgr.open.empty': "Every case of that week is resolved or closed.",
        'mgr.open.unlinked': '(case not found)',
        'mgr.escalated': 'Escalated to the manager or a leader',
        'mgr.escalated.hint': 'Cases open for a week are taken over by the manager, who coordinates the departments.',
        'mgr.escalated.empty': 'No open case is escalated to the manager or a leader.',
        'mgr.csv.open': 'Still open',
    },
});

/**
 * The week's still-open cases as rows linking to their pages. The case
 * list's summary is used when found (the status now, the clocks); a number
 * not found is shown without a link.
 */
async function openRows(stillOpen, dir) {
    if (!stillOpen.length) return el('p', { class: 'empty rep-empty' }, t('mgr.open.empty'));
    const byNumber = await casesByNumber(stillOpen.map((c) => c.number));
    return el('ul', { class: 'case-list' }, stillOpen.map((c) => {
        const now = byNumber.get(c.number);
        if (now) return caseRow(now, dir);
        return el('li', { class: 'rep-unlinked', dataset: { number: c.number, status: c.status } },
            el('div', { class: 'case-row-head' },
                el('span', { class: 'case-row-number' }, c.number),
                el('span', { class: 'badge badge-status', dataset: { status: c.status } }, t(`status.${c.status}`))),
            el('div', { class: 'case-row-subject' }, c.subject || ''),
            el('div', { class: 'case-row-meta muted' }, `${fmtTime(c.created_at)} ${t('mgr.open.unlinked')}`));
    }));
}

/**
 * Renders the manager's page: the weekly review (default last week) and the
 * escalated open cases.
 * @returns {Function} cleanup: stops the refreshes; answers arriving later are dropped
 */
export async function render(root, ctx) {
    const today = siteToday();
    const lastWeek = addDays(today, -7);
    let week = ''; // '' = the server's default, last week

    const weekIn = el('input', { type: 'date', value: lastWeek, max: today, 'aria-label': t('mgr.week'),
        'data-testid': 'mgr-week' });
    const prev = el('button', { type: 'button', class: 'btn btn-small' }, [t('mgr.prev')]);
    const next = el('button', { type: 'button', class: 'btn btn-small' }, [t('mgr.next')]);
    const lastBtn = el('button', { type: 'button', class: 'btn btn-small' }, [t('mgr.last-week')]);
    const csvBtn = el('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'mgr-csv', disabled: true },
        [t('mgr.csv')]);
    const range = el('p', { class: 'rep-range' });

    const weekly = section('mgr-weekly', t('mgr.weekly'), null,
        el('div', { class: 'rep-controls' }, [prev, weekIn, next, lastBtn, csvBtn]));
    weekly.body.before(range);
    const open = section('mgr-open', t('mgr.open'), t('mgr.open.hint'));
    const escalated = section('mgr-escalated', t('mgr.escalated'), t('mgr.escalated.hint'));

    root.replaceChildren(el('div', { class: 'rep-page' }, [
        el('h1', {}, [t('mgr.title')]),
        weekly.el,
        el('div', { class: 'rep-lists' }, [open.el, escalated.el]),
    ]));

    const dir = await directoryOrEmpty();
    let current = null;
    let seq = 0;
    let gone = false;

    async function loadWeek() {
        const mine = ++seq;
        csvBtn.disabled = true;
        loading(weekly.body);
        loading(open.body);
        try {
            const review = await api('GET', sitePath(`reports/weekly-review${week ? `?week=${week}` : ''}`));
            if (gone || mine !== seq) return;
            current = review;
            range.textContent = t('mgr.weekly.range', { from: review.week_from, to: review.week_to });
            weekIn.value = review.week_from;
            next.disabled = addDays(review.week_to, 1) > today;
            const drawn = qaSections(review.report, dir, 'mgr-chart-');
            current.csv = drawn.csv;
            weekly.body.replaceChildren(drawn.el);
            csvBtn.disabled = false;
            const rows = await openRows(review.still_open || [], dir);
            if (!gone && mine === seq) open.body.replaceChildren(rows);
        } catch (err) {
            if (gone || mine !== seq) return;
            range.textContent = '';
            problem(weekly.body, err, loadWeek);
            open.body.replaceChildren();
        }
    }

    async function loadEscalated() {
        if (!escalated.body.firstChild) loading(escalated.body);
        try {
            const res = await escalatedCases(['manager', 'leader']);
            if (gone) return;
            escalated.body.replaceChildren(caseList(res.cases, dir, t('mgr.escalated.empty')));
            if (res.partial) escalated.body.append(el('p', { class: 'rep-hint' }, [t('sup.escalated.partial', { n: res.checked })]));
        } catch (err) {
            if (!gone) problem(escalated.body, err, loadEscalated);
        }
    }

    function goWeek(date) {
        if (!isDate(date)) return;
        week = date > today ? today : date;
        loadWeek();
    }

    weekIn.addEventListener('change', () => goWeek(weekIn.value));
    prev.addEventListener('click', () => goWeek(addDays(weekIn.value || lastWeek, -7)));
    next.addEventListener('click', () => goWeek(addDays(weekIn.value || lastWeek, 7)));
    lastBtn.addEventListener('click', () => goWeek(lastWeek));
    csvBtn.addEventListener('click', () => {
        if (!current) return;
        const rows = [...csvHead(current.report), ...current.csv];
        for (const c of current.still_open || []) {
            rows.push([t('mgr.csv.open'), c.number, t(`status.${c.status}`), c.subject || '']);
        }
        downloadCsv(`weekly-review-${current.site}-${current.week_from}.csv`, rows);
    });

    await Promise.all([loadWeek(), loadEscalated()]);

    // The escalated list follows the live events (the review is a past
    // week's roll-up and is read again only when asked).
    const refresh = debounce(loadEscalated, 1500);
    const unsubscribe = onCaseEvent(refresh);
    const timer = setInterval(loadEscalated, 60000);
    return () => {
        gone = true;
        refresh.cancel();
        clearInterval(timer);
        unsubscribe();
    };
}
