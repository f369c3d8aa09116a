// My work: what the signed-in person must act on or follow up.
//   my-owned     cases I own now (事实首问责任人), open;
//   my-followup  cases I first received (自然首问责任人): I stay accountable
//                for following them up whoever holds them; inside it,
//                my-callbacks: the resolved ones, whose callback (回访) is
//                mine to make, then the ones still open.
// Every row counts down its deadlines. The lists are read again when a live
// event arrives (a burst is read once), when the stream reconnects, and every
// 60 s in case an event was missed.

import { api, directoryOrEmpty } from '../api.js';
import { el, caseSection, showError, fmtTime, firstDue, withClocks, liveReader } from '../util.js';

const OPEN = 'registered,assigned,transferred,accepted,in_progress,waiting';
const LIMIT = 200;

export async function render(root, ctx) {
    const { t } = ctx;
    const body = el('div', { class: 'my-body' });
    const stamp = el('span', { class: 'muted updated' });
    const refreshBtn = el('button', { type: 'button', class: 'btn btn-small', testid: 'refresh', on: { click: () => load() } }, t('common.refresh'));
    root.appendChild(el('div', { class: 'view-head' }, el('h1', {}, t('my.title')), stamp, refreshBtn));
    root.appendChild(body);
    body.appendChild(el('p', { class: 'muted' }, t('common.loading')));

    const live = liveReader(async (alive) => {
        try {
            const [dir, owned, followOpen, callbacks] = await Promise.all([
                directoryOrEmpty(),
                api('GET', `/v1/cases?owner=me&status=${OPEN}&limit=${LIMIT}`),
                api('GET', `/v1/cases?first_responder=me&status=${OPEN}&limit=${LIMIT}`),
                api('GET', `/v1/cases?first_responder=me&status=resolved&limit=${LIMIT}`),
            ]);
            await withClocks([...owned.cases, ...followOpen.cases, ...callbacks.cases]);
            if (!alive()) return;
            // Soonest deadline first: what needs doing now is at the top.
            const byDue = (list) => list.slice().sort((a, b) => firstDue(a) - firstDue(b));
            const followup = el(
                'section',
                { class: 'case-section', testid: 'my-followup' },
                el('h2', {}, t('my.followup')),
                caseSection('my-callbacks', t('my.callbacks'), byDue(callbacks.cases), dir, { more: !!callbacks.next }),
                caseSection('my-followup-open', t('my.followup.open'), byDue(followOpen.cases), dir, { more: !!followOpen.next }),
            );
            body.replaceChildren(caseSection('my-owned', t('my.owned'), byDue(owned.cases), dir, { more: !!owned.next }), followup);
            stamp.textContent = t('common.updated', { time: fmtTime(new Date().toISOString()) });
        } catch (err) {
            if (alive()) showError(body, err);
        }
    });
    const load = live.load;
    await load();
    return live.stop;
}
