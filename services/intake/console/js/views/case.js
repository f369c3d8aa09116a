// One case: its details, its clocks, what this person may do now, and the
// timeline of signed, timed handoffs (签名签时), notes and events.
//
// The actions shown follow the rules table of openapi.yaml (who may run which
// command in which status); it only decides which buttons to offer: the
// server is the judge, and its reason is shown when it refuses (403, 409).
// Every command is sent with If-Match: the version shown; when someone else
// changed the case meanwhile (412) the page reloads and says so.
// There is no refuse button: a department returns with a written reason or
// forwards to the right department.

import { api, onCaseEvent, directoryOrEmpty, enc } from '../api.js';
import { addMessages, has } from '../i18n.js';
import {
    el,
    field,
    select,
    showError,
    showApiError,
    clearError,
    showNotice,
    fmtTime,
    clockEl,
    personName,
    deptName,
    debounce,
} from '../util.js';

addMessages({
    zh: {
        'ev.case.registered': '登记',
        'ev.case.resolved_on_spot': '当场办结',
        'ev.case.assigned': '分派',
        'ev.case.transferred': '转办',
        'ev.case.accepted': '接收并指派经办人',
        'ev.case.returned': '退回',
        'ev.case.forwarded': '转交',
        'ev.case.first_contact': '联系客户',
        'ev.case.progress': '阶段性反馈',
        'ev.case.resolved': '办结',
        'ev.case.callback': '回访',
        'ev.case.reopened': '重新打开',
        'ev.case.escalated': '升级',
        'ev.case.lead_designated': '指定主办部门',
        'ev.case.referred_out': '引导至外部',
        'ev.case.closed_unresolvable': '无法解决，关闭',
        'ev.case.waiting': '等待',
        'ev.case.resumed': '恢复处理',
        'ev.case.leader_callback_requested': '请领导回电',
        'ev.case.routed': '自动分派',
        'ev.case.deadline_breached': '超时',
        'ev.emergency.alerted': '紧急警报',
        'ev.emergency.acknowledged': '紧急响应确认',
        'ev.notification.delivered': '通知已送达',
        'ev.notification.failed': '通知发送失败',
        'case.changed': '这个事项有新的变化。',
        'case.reload': '重新载入',
        'case.lead': '主办',
        'case.lead_department': '主办部门',
        'case.assisting': '协办部门',
    },
    en: {
        'ev.case.registered': 'registered',
        'ev.case.resolved_on_spot': 'resolved on the spot',
        'ev.case.assigned': 'assigned',
        'ev.case.transferred': 'transferred',
        'ev.case.accepted': 'accepted, handler appointed',
        'ev.case.returned': 'returned',
        'ev.case.forwarded': 'forwarded',
        'ev.case.first_contact': 'customer contacted',
        'ev.case.progress': 'progress',
        'ev.case.resolved': 'resolved',
        'ev.case.callback': 'callback',
        'ev.case.reopened': 'reopened',
        'ev.case.escalated': 'escalated',
        'ev.case.lead_designated': 'lead department designated',
        'ev.case.referred_out': 'referred out',
        'ev.case.closed_unresolvable': 'closed as unresolvable',
        'ev.case.waiting': 'waiting',
        'ev.case.resumed': 'resumed',
        'ev.case.leader_callback_requested': "leader's call-back requested",
        'ev.case.routed': 'routed',
        'ev.case.deadline_breached': 'deadline missed',
        'ev.emergency.alerted': 'emergency alert',
        'ev.emergency.acknowledged': 'emergency acknowledged',
        'ev.notification.delivered': 'notification delivered',
        'ev.notification.failed': 'notification failed',
        'case.changed': 'This case has changed.',
        'case.reload': 'Reload',
        'case.lead': 'lead',
        'case.lead_department': 'Lead department',
        'case.assisting': 'Assisting departments',
    },
});

// Status letters of the rules table.
const LETTER = {
    registered: 'R',
    assigned: 'A',
    transferred: 'T',
    accepted: 'C',
    in_progress: 'P',
    waiting: 'W',
    resolved: 'V',
    closed: 'D',
    closed_unresolvable: 'U',
    referred_out: 'O',
};
const SUP = ['supervisor', 'manager', 'leader'];
const LEVELS = ['none', 'supervisor', 'manager', 'leader'];

/**
 * The person's position toward a case: o owner, d head of the owning
 * department, t in the owning or an assisting department, f natural first responder, sup a
 * supervisor, manager or leader; role.
 */
function position(c, me) {
    const inDept = !!c.department && c.department === me.department;
    const assisting = !!me.department && (c.assisting_departments || []).includes(me.department);
    return {
        role: me.role,
        o: c.owner === me.code,
        d: me.role === 'department_head' && inDept,
        t: inDept || assisting,
        f: c.first_responder === me.code,
        sup: SUP.includes(me.role),
    };
}

// ------------------------------------------------------------------ fields

// A field of an action form: `name` the command's member, `testid`, `label`
// (an i18n key), `make(env)` builds the input, `value(input)` reads it
// (undefined: leave the member out), `required`.
const text = (name, testid, label, required, rows = 3) => ({
    name,
    testid,
    label,
    required,
    make: () => el('textarea', { rows: String(rows) }),
    value: (i) => (i.value.trim() ? i.value.trim() : undefined),
});
const line = (name, testid, label, required) => ({
    name,
    testid,
    label,
    required,
    make: () => el('input', { autocomplete: 'off' }),
    value: (i) => (i.value.trim() ? i.value.trim() : undefined),
});
// A date told to the customer: the end of that local day, so today is not "in the past".
const date = (name, testid, label) => ({
    name,
    testid,
    label,
    make: () => el('input', { type: 'date' }),
    value: (i) => (i.value ? i.value + 'T23:59:59' : undefined),
});
const choice = (name, testid, label, options, required = true) => ({
    name,
    testid,
    label,
    required,
    make: (env) => select({}, options(env), undefined, env.t('common.choose')),
    value: (i) => i.value || undefined,
});

const reason = text('reason', 'f-reason', 'f.reason', true);
const note = text('note', 'f-text', 'f.note', false, 2);

const activeDepts = (env, exceptCurrent) =>
    env.dir.departments.filter((d) => d.active && !(exceptCurrent && d.code === env.c.department)).map((d) => [d.code, d.name]);
const staffOf = (env, pred) =>
    env.dir.staff
        .filter((p) => p.active && pred(p))
        .map((p) => [p.code, `${p.name} (${p.code})` + (p.on_duty === false ? ' · ' + env.t('f.off-duty') : '')]);

addMessages({ zh: { 'f.off-duty': '不在岗' }, en: { 'f.off-duty': 'off duty' } });

// The commands offered, in the order shown. statuses: letters of the rules
// table; may(p): the table's column for the person's role; when(c): any
// further condition on the case.
const ACTIONS = [
    {
        cmd: 'accept',
        statuses: 'T',
        may: (p) => p.o || p.d || p.sup,
        hint: 'f.accept.hint',
        primary: true,
        fields: [
            choice('handler', 'f-handler', 'f.handler', (env) => staffOf(env, (s) => s.department === env.c.department)),
            note,
        ],
    },
    { cmd: 'resolve_on_spot', statuses: 'R', may: (p) => p.o, fields: [text('result', 'f-result', 'f.result', true)] },
    {
        cmd: 'first_contact',
        statuses: 'RAC',
        may: (p) => p.o,
        primary: true,
        fields: [text('note', 'f-text', 'f.text', false, 2)],
    },
    {
        cmd: 'progress',
        statuses: 'P',
        may: (p) => p.o || p.t || p.sup,
        fields: [text('note', 'f-text', 'f.text', true), date('expected_completion_at', 'f-expected-date', 'f.expected-date')],
    },
    { cmd: 'resolve', statuses: 'RACP', may: (p) => p.o || p.d || p.sup, primary: true, fields: [text('result', 'f-result', 'f.result', true)] },
    {
        cmd: 'callback',
        statuses: 'V',
        may: (p) => p.f || p.role === 'receptionist' || p.sup,
        hint: 'f.callback.hint',
        primary: true,
        fields: [
            choice('satisfaction', 'f-satisfaction', 'f.satisfaction', (env) =>
                ['satisfied', 'basically_satisfied', 'unsatisfied', 'unreachable'].map((s) => [s, env.t('satisfaction.' + s)]),
            ),
            note,
        ],
    },
    {
        cmd: 'wait',
        statuses: 'RACP',
        may: (p) => p.o || p.d || p.sup,
        fields: [
            choice('waiting_on', 'f-waiting-for', 'f.waiting-for', (env) => ['customer', 'third_party'].map((w) => [w, env.t('waiting.' + w)])),
            reason,
            date('expected_until', 'f-expected-until', 'f.expected-until'),
        ],
    },
    { cmd: 'resume', statuses: 'W', may: (p) => p.o || p.d || p.sup, primary: true, fields: [note] },
    {
        cmd: 'assign',
        statuses: 'RACP',
        may: (p) => p.o || p.d || p.sup,
        fields: [
            choice('to_staff', 'f-to-staff', 'f.to-staff', (env) =>
                staffOf(env, (s) => s.code !== env.c.owner && (s.department === (env.c.department || env.me.department) || env.pos.sup)),
            ),
            text('reason', 'f-reason', 'f.text', false, 2),
        ],
    },
    {
        cmd: 'transfer',
        statuses: 'RACP',
        may: (p) => p.o || p.d || p.sup,
        fields: [
            choice('to_department', 'f-department', 'f.department', (env) => activeDepts(env, true)),
            reason,
            line('slip_number', 'f-slip', 'f.slip', false),
        ],
    },
    {
        cmd: 'forward',
        statuses: 'TC',
        may: (p) => p.o || p.d || p.sup,
        hint: 'f.return.hint',
        fields: [choice('to_department', 'f-department', 'f.department', (env) => activeDepts(env, true)), reason],
    },
    { cmd: 'return', statuses: 'ATCP', may: (p) => p.o || p.d || p.sup, hint: 'f.return.hint', fields: [reason] },
    {
        cmd: 'escalate',
        statuses: 'RATCPW',
        may: (p) => p.o || p.f || p.d || p.sup,
        when: (c) => c.escalation_level !== 'leader', // the top rung: nowhere higher to go
        fields: [
            choice('level', 'f-level', 'f.level', (env) =>
                LEVELS.slice(LEVELS.indexOf(env.c.escalation_level) + 1).map((l) => [l, env.t('esc.' + l)]),
            ),
            choice('to_staff', 'f-to-staff', 'f.to-staff', (env) => staffOf(env, (s) => SUP.includes(s.role)), false),
            reason,
        ],
    },
    {
        cmd: 'designate_lead',
        statuses: 'RATCP',
        may: (p) => p.sup,
        fields: [
            choice('lead_department', 'f-department', 'f.lead', (env) => activeDepts(env, false)),
            {
                name: 'assisting_departments',
                testid: 'f-assisting',
                label: 'f.assisting',
                make: (env) =>
                    el(
                        'div',
                        { class: 'checks' },
                        activeDepts(env, false).map(([code, name]) =>
                            el('label', { class: 'check' }, el('input', { type: 'checkbox', value: code }), el('span', {}, name)),
                        ),
                    ),
                value: (i) => {
                    const v = [...i.querySelectorAll('input:checked')].map((x) => x.value);
                    return v.length ? v : undefined;
                },
            },
            reason,
        ],
    },
    {
        cmd: 'request_leader_callback',
        statuses: 'RATCPWV',
        may: () => true,
        hint: 'f.leader.hint',
        fields: [
            // Leaders by name only: a leader's number is never shown (nor
            // sent by the API). The select is f-handler, as the browser test
            // names the one person chosen in a form.
            choice('leader', 'f-handler', 'f.leader', (env) =>
                env.dir.staff.filter((s) => s.active && s.role === 'leader').map((s) => [s.code, s.name]),
            ),
            reason,
            {
                name: 'callback_phone',
                testid: 'f-phone',
                label: 'f.phone',
                make: (env) => {
                    const ph = env.c.customer && env.c.customer.phone;
                    return el('input', { type: 'tel', inputmode: 'tel', value: ph && !ph.includes('*') ? ph : '' });
                },
                value: (i) => (i.value.trim() ? i.value.trim() : undefined),
            },
        ],
    },
    {
        cmd: 'refer_out',
        statuses: 'RATCP',
        may: (p) => p.o || p.d || p.sup,
        fields: [line('referred_to', 'f-referred-to', 'f.referred-to', true), text('guidance', 'f-guidance', 'f.guidance', true)],
    },
    { cmd: 'reopen', statuses: 'VDUO', may: (p) => p.f || p.role === 'qa' || p.sup, fields: [reason] },
    { cmd: 'close_unresolvable', statuses: 'RATCPW', may: (p) => p.role === 'manager', hint: 'f.close.hint', danger: true, fields: [reason] },
];

// ------------------------------------------------------------------ view

export async function render(root, ctx) {
    const { t, session } = ctx;
    const id = ctx.params.id;
    const me = session.staff;
    let alive = true;
    let c = null; // the case as last read
    let history = null;
    let dir = null;
    let formOpen = false;
    let changedBanner = null;

    const notices = el('div', { class: 'case-notices' });
    const body = el('div', { class: 'case-body' }, el('p', { class: 'muted' }, t('common.loading')));
    root.appendChild(
        el(
            'div',
            { class: 'view-head' },
            el('button', { type: 'button', class: 'btn btn-small', on: { click: () => historyBack(ctx) } }, '← ' + t('common.back')),
        ),
    );
    root.append(notices, body);

    /**
     * Reads the case and its history; `after`: a notice or an error to show
     * once drawn; `live`: read for a live event, not asked for.
     */
    async function load(after, live) {
        try {
            const [cc, hh, dd] = await Promise.all([
                api('GET', '/v1/cases/' + enc(id)),
                api('GET', '/v1/cases/' + enc(id) + '/history'),
                dir ? Promise.resolve(dir) : directoryOrEmpty(),
            ]);
            if (!alive) return;
            // A form opened while this read was on its way: do not wipe
            // what the person is typing, offer the reload instead.
            if (live && formOpen) {
                offerReload();
                return;
            }
            c = cc;
            history = hh;
            dir = dd;
            formOpen = false;
            if (changedBanner) changedBanner.remove();
            changedBanner = null;
            draw();
            // A reload for a live event keeps what is shown (e.g. the 412
            // message that may have come just before); one after an action
            // replaces it with the action's outcome.
            if (after) {
                notices.replaceChildren();
                if (after.error) showError(notices, after.error);
                else if (after.notice) showNotice(notices, after.notice, 'ok', 'notice');
            }
        } catch (err) {
            if (!alive) return;
            if (c) showError(notices, err);
            else {
                body.replaceChildren();
                showError(body, err);
            }
        }
    }

    function draw() {
        const env = { c, dir, me, t, pos: position(c, me) };
        // What the case is and what to do first (a phone shows one column), then the rest.
        body.replaceChildren(heading(env), clocks(env), actions(env), details(env), timeline(env));
    }

    // ---- heading: number, status, subject
    function heading({ c }) {
        return el(
            'section',
            { class: 'card case-heading' },
            el(
                'div',
                { class: 'case-title' },
                el('h1', { testid: 'case-number' }, c.number),
                el('span', { class: 'badge badge-status', testid: 'case-status', dataset: { status: c.status } }, t('status.' + c.status)),
                c.urgency !== 'normal' ? el('span', { class: 'badge badge-urgent' }, t('urgency.' + c.urgency)) : null,
                c.escalation_level !== 'none' ? el('span', { class: 'badge badge-attention' }, t('case.escalation') + ': ' + t('esc.' + c.escalation_level)) : null,
            ),
            el('p', { class: 'case-subject' }, c.subject),
            c.description ? el('p', { class: 'case-description' }, c.description) : null,
        );
    }

    // ---- details
    function details({ c }) {
        const row = (label, value, attrs) => (value === null || value === undefined || value === '' ? null : el('div', { class: 'dl-row' }, el('dt', {}, t(label)), el('dd', attrs || {}, value)));
        const cu = c.customer || {};
        return el(
            'section',
            { class: 'card case-details' },
            el('h2', {}, t('case.details')),
            el(
                'dl',
                { class: 'dl' },
                row('case.type', t('type.' + c.type)),
                row('case.channel', t('channel.' + c.channel)),
                row('case.created', fmtTime(c.created_at)),
                row('case.first_responder', personName(dir, c.first_responder)),
                row('case.owner', personName(dir, c.owner), { testid: 'case-owner', dataset: { owner: c.owner || '' } }),
                row('case.department', deptName(dir, c.department), { testid: 'case-department', dataset: { department: c.department || '' } }),
                row('case.lead_department', c.lead_department ? deptName(dir, c.lead_department) : null, { testid: 'case-lead' }),
                row('case.assisting', (c.assisting_departments || []).map((d) => deptName(dir, d)).join('、') || null, { testid: 'case-assisting' }),
                row('case.customer', [cu.name, cu.unit, cu.room, cu.address].filter(Boolean).join(' · ')),
                row('case.phone', cu.phone),
                row('case.email', cu.email),
                row('case.result', c.result),
                row('case.satisfaction', c.satisfaction ? t('satisfaction.' + c.satisfaction) : null),
            ),
            c.required_documents && c.required_documents.length
                ? el('div', { class: 'case-docs' }, el('h3', {}, t('case.documents')), el('ul', {}, c.required_documents.map((d) => el('li', {}, d))))
                : null,
        );
    }

    // ---- clocks
    function clocks({ c }) {
        const list = Array.isArray(c.clocks) ? c.clocks : [];
        return el(
            'section',
            { class: 'card case-clocks', testid: 'clocks' },
            el('h2', {}, t('case.clocks')),
            list.length
                ? el(
                      'div',
                      { class: 'clock-list' },
                      list.map((k) =>
                          clockEl({
                              kind: k.kind,
                              due: k.due_at,
                              start: k.started_at,
                              paused: k.state === 'paused',
                              met: k.state === 'met',
                              breached: k.state === 'breached',
                          }),
                      ),
                  )
                : el('p', { class: 'empty' }, t('common.none')),
        );
    }

    // ---- actions
    function actions(env) {
        const letter = LETTER[env.c.status];
        const offered = ACTIONS.filter((a) => a.statuses.includes(letter) && a.may(env.pos) && (!a.when || a.when(env.c)));
        const formSlot = el('div', { class: 'action-form-slot' });
        const buttons = el(
            'div',
            { class: 'action-buttons' },
            offered.map((a) =>
                el(
                    'button',
                    {
                        type: 'button',
                        class: 'btn' + (a.primary ? ' btn-primary' : '') + (a.danger ? ' btn-danger' : ''),
                        testid: 'act-' + a.cmd,
                        on: { click: (e) => openForm(a, env, formSlot, buttons, e.currentTarget) },
                    },
                    t('act.' + a.cmd),
                ),
            ),
        );
        return el(
            'section',
            { class: 'card case-actions' },
            el('h2', {}, t('case.actions')),
            offered.length ? buttons : el('p', { class: 'empty' }, t('case.no-actions')),
            formSlot,
        );
    }

    function openForm(a, env, slot, buttons, btn) {
        for (const b of buttons.querySelectorAll('button')) b.classList.toggle('active', b === btn);
        const errors = el('div');
        const inputs = a.fields.map((f) => {
            const i = f.make(env);
            i.dataset.testid = f.testid;
            return [f, i];
        });
        const submit = el('button', { type: 'submit', class: 'btn btn-primary', testid: 'f-submit' }, t('f.submit'));
        const form = el(
            'form',
            { class: 'action-form', novalidate: true, dataset: { command: a.cmd } },
            el('h3', {}, t('act.' + a.cmd)),
            a.hint ? el('p', { class: 'hint' }, t(a.hint)) : null,
            errors,
            inputs.map(([f, i]) => field(t(f.label) + (f.required ? '' : t('common.optional')), i, f.name)),
            el(
                'div',
                { class: 'form-buttons' },
                submit,
                el('button', { type: 'button', class: 'btn', on: { click: () => closeForm(slot, buttons) } }, t('common.cancel')),
            ),
        );
        form.addEventListener('submit', async (e) => {
            e.preventDefault();
            clearError(errors);
            clearError(form);
            const payload = {};
            const missing = [];
            for (const [f, i] of inputs) {
                const v = f.value(i);
                if (v === undefined) {
                    if (f.required) missing.push({ field: f.name, message: t('err.required') });
                } else payload[f.name] = v;
            }
            if (missing.length) {
                showApiError(errors, { name: 'ApiError', status: 422, message: t('err.422'), reason: '', fields: missing }, form);
                return;
            }
            submit.disabled = true;
            try {
                await api('POST', `/v1/cases/${enc(id)}/actions/${a.cmd}`, payload, { ifMatch: c.version });
                await load({ notice: t('act.done', { what: t('act.' + a.cmd) }) });
            } catch (err) {
                submit.disabled = false;
                if (err.status === 412) {
                    // Someone else moved the case: show it as it is now, and say so.
                    await load({ error: err });
                } else {
                    showApiError(errors, err, form);
                }
            }
        });
        slot.replaceChildren(form);
        formOpen = true;
        const first = form.querySelector('select, input, textarea');
        if (first) first.focus();
        form.scrollIntoView({ block: 'nearest' });
    }

    function closeForm(slot, buttons) {
        slot.replaceChildren();
        for (const b of buttons.querySelectorAll('button')) b.classList.remove('active');
        formOpen = false;
        if (changedBanner) load();
    }

    // ---- timeline
    function timeline() {
        const items = [];
        const covered = new Set();
        for (const h of history.handoffs || []) {
            if (h.event_id) covered.add(h.event_id);
            items.push({
                at: h.at,
                kind: 'handoff',
                title: t('handoff.' + h.kind),
                route: t('tl.from-to', { from: who(h.from_staff, h.from_department), to: who(h.to_staff, h.to_department) }),
                signed: signedBy(h.by, h.on_behalf_of, h.by_system),
                reason: h.reason,
            });
        }
        for (const n of history.notes || []) {
            if (n.event_id) covered.add(n.event_id);
            items.push({
                at: n.at,
                kind: 'note',
                title: t('note.' + n.kind) + (n.satisfaction ? ' · ' + t('satisfaction.' + n.satisfaction) : ''),
                text: n.text,
                expected: n.expected_date,
                signed: signedBy(n.by, null, null),
            });
        }
        for (const ev of history.events || []) {
            if (covered.has(ev.event_id)) continue;
            items.push({
                at: ev.time || ev.created_at,
                kind: 'event',
                title: has('ev.' + ev.type) ? t('ev.' + ev.type) : ev.type,
                signed: ev.error ? null : signedBy(ev.by, ev.on_behalf_of, ev.by_system),
            });
        }
        // The API's times are UTC with microseconds: as strings they sort exactly.
        items.sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));
        return el(
            'section',
            { class: 'card case-timeline' },
            el('h2', {}, t('case.timeline')),
            el(
                'ol',
                { class: 'timeline', testid: 'timeline' },
                items.length
                    ? items.map((i) =>
                          el(
                              'li',
                              { class: 'timeline-item tl-' + i.kind, testid: 'timeline-item' },
                              el('div', { class: 'tl-head' }, el('time', { datetime: i.at }, fmtTime(i.at, true)), el('strong', {}, i.title)),
                              i.route ? el('div', { class: 'tl-route' }, i.route) : null,
                              i.text ? el('div', { class: 'tl-text' }, i.text) : null,
                              i.reason ? el('div', { class: 'tl-reason' }, t('tl.reason', { text: i.reason })) : null,
                              i.expected ? el('div', { class: 'tl-expected' }, t('tl.expected', { date: i.expected })) : null,
                              i.signed ? el('div', { class: 'tl-signed' }, i.signed) : null,
                          ),
                      )
                    : el('li', { class: 'empty' }, t('tl.empty')),
            ),
        );
    }

    function who(staff, dept) {
        if (staff && dept) return `${personName(dir, staff)} · ${deptName(dir, dept)}`;
        if (staff) return personName(dir, staff);
        if (dept) return deptName(dir, dept);
        return t('tl.nobody');
    }

    function signedBy(by, forWhom, system) {
        if (by && forWhom) return t('tl.signed-for', { by: personName(dir, by), for: personName(dir, forWhom) });
        if (by) return t('tl.signed', { by: personName(dir, by) });
        if (system) return t('tl.signed', { by: t('tl.system', { name: system }) });
        return null;
    }

    // ---- live: another person changed this case
    const reread = debounce(() => {
        if (!alive) return;
        if (!formOpen) {
            load(undefined, true);
            return;
        }
        // Do not wipe what the person is typing: offer the reload instead.
        offerReload();
    }, 300);
    function offerReload() {
        if (changedBanner) return;
        changedBanner = showNotice(notices, t('case.changed'), 'info', 'case-changed');
        changedBanner.appendChild(
            el('button', { type: 'button', class: 'btn btn-small', on: { click: () => load() } }, t('case.reload')),
        );
    }
    const unsub = onCaseEvent((ev) => {
        if (ev.case === id || ev.type === 'stream.reconnected') reread();
    });

    await load();

    return () => {
        alive = false;
        unsub();
        reread.cancel();
    };
}

function historyBack(ctx) {
    if (window.history.length > 1) window.history.back();
    else ctx.navigate('#/my');
}

addMessages({ zh: { 'err.required': '必填' }, en: { 'err.required': 'required' } });
