// The department queue: the open cases of my department (or, for those who
// look after several, of the department chosen in the list), cases waiting
// for a handler to be appointed first. The head acts on the case page:
// accept and appoint a handler, return with a written reason, or forward to
// the right department. There is no refuse: a department may not refuse.
// Live events, a reconnect and a 60 s timer read the list again.

import { api, directoryOrEmpty, enc } from '../api.js';
import { el, caseSection, showError, fmtTime, select, firstDue, withClocks, liveReader } from '../util.js';

const OPEN = 'registered,assigned,transferred,accepted,in_progress,waiting';
const LIMIT = 200;
// Roles that look across departments may pick another department's queue.
const PICKERS = ['supervisor', 'manager', 'leader', 'qa'];

export async function render(root, ctx) {
    const { t, session } = ctx;
    const dir = await directoryOrEmpty();
    let dept = session.staff.department;
    const canPick = PICKERS.includes(session.staff.role) && dir.departments.length > 0;

    const head = el('div', { class: 'view-head' }, el('h1', {}, t('queue.title')));
    root.appendChild(head);
    if (!dept && !canPick) {
        root.appendChild(el('p', { class: 'empty' }, t('queue.no-department')));
        return undefined;
    }
    if (!dept) dept = dir.departments[0].code;

    const stamp = el('span', { class: 'muted updated' });
    head.appendChild(stamp);
    if (canPick) {
        const picker = select(
            { testid: 'queue-department', 'aria-label': t('queue.department') },
            dir.departments.filter((d) => d.active).map((d) => [d.code, d.name]),
            dept,
        );
        picker.addEventListener('change', () => {
            dept = picker.value;
            load();
        });
        head.appendChild(picker);
    }
    head.appendChild(el('button', { type: 'button', class: 'btn btn-small', testid: 'refresh', on: { click: () => load() } }, t('common.refresh')));
    root.appendChild(el('p', { class: 'hint' }, t('queue.hint')));
    const body = el('div', { class: 'queue-body' }, el('p', { class: 'muted' }, t('common.loading')));
    root.appendChild(body);

    const live = liveReader(async (alive) => {
        const asked = dept;
        try {
            const page = await api('GET', `/v1/cases?department=${enc(asked)}&status=${OPEN}&limit=${LIMIT}`);
            await withClocks(page.cases);
            if (!alive() || asked !== dept) return;
            // Transferred cases (a handler to appoint at once) first, then by deadline.
            const rank = (c) => (c.status === 'transferred' ? 0 : 1);
            const cases = page.cases.slice().sort((a, b) => rank(a) - rank(b) || firstDue(a) - firstDue(b));
            body.replaceChildren(
                caseSection('queue-list', dir.dept(asked) ? dir.dept(asked).name : asked, cases, dir, {
                    more: !!page.next,
                    badge: (c) => (c.status === 'transferred' ? t('list.to-appoint') : null),
                }),
            );
            stamp.textContent = t('common.updated', { time: fmtTime(new Date().toISOString()) });
        } catch (err) {
            if (alive()) showError(body, err);
        }
    });
    const load = live.load;
    await load();
    return live.stop;
}
