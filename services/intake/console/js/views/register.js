// Registering a request (登记) in the shape of the reception log
// (《接待业主情况记录》): channel, type, urgency, who asked (name, unit,
// phone, room, address), the subject and the matter; the time and the first
// responder (the person signed in) are filled in. For the chosen type the
// site's checklist of what the customer must bring is shown once, so that it
// can be told in one go (一次性告知), and sent as required_documents.
//
// "Resolved on the spot" (当场办结) registers, then runs resolve_on_spot
// with the result on the new case (version 1). The result is checked here
// first, so that a blank one does not leave a registered case behind.
//
// Each fill of the form carries one Idempotency-Key: pressing the button
// again after a lost answer cannot register the request twice.

import { api, checklists, ApiError } from '../api.js';
import { el, field, select, showApiError, clearError, fmtTime, uuid, showError } from '../util.js';

const CHANNELS = ['visit', 'phone', 'letter', 'web', 'email', 'hotline', 'chat', 'social', 'meeting', 'callback'];
const TYPES = ['consultation', 'complaint', 'help', 'suggestion', 'repair', 'business', 'report', 'emergency'];
const URGENCIES = ['normal', 'urgent', 'emergency'];
const CHANNEL_KEY = 'shouwen.channel';

export async function render(root, ctx) {
    const { t, session } = ctx;
    const lists = await checklists(); // {} when the site has none

    let lastChannel = 'visit';
    try {
        lastChannel = localStorage.getItem(CHANNEL_KEY) || 'visit';
    } catch {
        /* the default */
    }

    const opts = (prefix, values) => values.map((v) => [v, t(prefix + v)]);
    const channel = select({ testid: 'reg-channel', name: 'channel' }, opts('channel.', CHANNELS), CHANNELS.includes(lastChannel) ? lastChannel : 'visit');
    const type = select({ testid: 'reg-type', name: 'type' }, opts('type.', TYPES), '', t('common.choose'));
    const urgency = select({ testid: 'reg-urgency', name: 'urgency' }, opts('urgency.', URGENCIES), 'normal');
    const name = el('input', { testid: 'reg-customer-name', autocomplete: 'off' });
    const unit = el('input', { testid: 'reg-unit', autocomplete: 'off' });
    const phone = el('input', { testid: 'reg-phone', type: 'tel', inputmode: 'tel', autocomplete: 'off' });
    const room = el('input', { testid: 'reg-room', autocomplete: 'off' });
    const address = el('input', { testid: 'reg-address', autocomplete: 'off' });
    const subject = el('input', { testid: 'reg-subject', autocomplete: 'off', maxlength: '1000' });
    const description = el('textarea', { testid: 'reg-description', rows: '4' });
    const onspot = el('input', { type: 'checkbox', testid: 'reg-onspot' });
    const result = el('textarea', { testid: 'reg-result', rows: '3' });
    const submit = el('button', { type: 'submit', class: 'btn btn-primary btn-block', testid: 'reg-submit' }, t('reg.submit'));

    // The time of registration, shown ticking; the server stamps the real one.
    const now = el('output', { class: 'reg-now' }, fmtTime(new Date().toISOString()));
    const nowTimer = setInterval(() => {
        now.textContent = fmtTime(new Date().toISOString());
    }, 15000);

    const checklistItems = el('ul', { class: 'checklist' });
    const checklist = el(
        'fieldset',
        { class: 'reg-checklist', testid: 'reg-checklist', hidden: true, dataset: { field: 'required_documents' } },
        el('legend', {}, t('reg.checklist')),
        el('p', { class: 'field-hint' }, t('reg.checklist.hint')),
        checklistItems,
    );
    // showFieldErrors() looks for .field around the input named by data-field.
    checklist.classList.add('field');
    checklist.appendChild(el('span', { class: 'field-error', role: 'alert' }));

    const resultField = field(t('reg.result'), result, 'result');
    resultField.hidden = true;

    const done = el('div', { class: 'reg-done-slot' });
    const errors = el('div');
    const me = session.staff;

    const form = el(
        'form',
        { class: 'card reg-form', novalidate: true },
        el('h1', {}, t('reg.title'), ' ', el('small', { class: 'muted' }, t('reg.subtitle'))),
        errors,
        el(
            'div',
            { class: 'reg-stamp' },
            el('div', {}, el('span', { class: 'field-label' }, t('reg.time')), now),
            el('div', { testid: 'reg-responder' }, el('span', { class: 'field-label' }, t('reg.responder')), `${me.name} (${me.code})`),
        ),
        el('div', { class: 'grid-3' }, field(t('reg.channel'), channel, 'channel'), field(t('reg.type'), type, 'type'), field(t('reg.urgency'), urgency, 'urgency')),
        el(
            'fieldset',
            { class: 'reg-customer' },
            el('legend', {}, t('reg.customer')),
            el(
                'div',
                { class: 'grid-2' },
                field(t('reg.customer-name'), name, 'customer.name'),
                field(t('reg.phone'), phone, 'customer.phone'),
                field(t('reg.unit'), unit, 'customer.unit'),
                field(t('reg.room'), room, 'customer.room'),
            ),
            field(t('reg.address'), address, 'customer.address'),
        ),
        field(t('reg.subject'), subject, 'subject'),
        field(t('reg.description'), description, 'description'),
        checklist,
        el('label', { class: 'check reg-onspot' }, onspot, el('span', {}, t('reg.onspot'), el('small', { class: 'muted' }, ' · ' + t('reg.onspot.hint')))),
        resultField,
        submit,
    );

    let idemKey = uuid();
    // Any change after a success starts a new submission (a new key).
    form.addEventListener('input', () => {
        if (form.dataset.sent) {
            delete form.dataset.sent;
            idemKey = uuid();
        }
    });

    function showChecklist() {
        const items = lists[type.value] || [];
        while (checklistItems.firstChild) checklistItems.firstChild.remove();
        for (const item of items) {
            checklistItems.appendChild(
                el('li', {}, el('label', { class: 'check', testid: 'checklist-item' }, el('input', { type: 'checkbox', checked: true, value: item }), el('span', {}, item))),
            );
        }
        checklist.hidden = items.length === 0;
    }
    type.addEventListener('change', showChecklist);
    onspot.addEventListener('change', () => {
        resultField.hidden = !onspot.checked;
        submit.textContent = onspot.checked ? t('reg.submit.onspot') : t('reg.submit');
        if (onspot.checked) result.focus();
    });

    form.addEventListener('submit', async (e) => {
        e.preventDefault();
        clearError(errors);
        clearError(form);
        done.replaceChildren();

        if (onspot.checked && !result.value.trim()) {
            showApiError(errors, new ApiError(422, '', [{ field: 'result', message: t('reg.result.required') }]), form);
            return;
        }

        const val = (i) => (i.value.trim() === '' ? null : i.value.trim());
        const customer = { name: val(name), unit: val(unit), phone: val(phone), room: val(room), address: val(address) };
        for (const k of Object.keys(customer)) if (customer[k] === null) delete customer[k];
        const body = {
            site: session.site.code,
            channel: channel.value,
            type: type.value,
            urgency: urgency.value,
            subject: subject.value.trim(),
            first_responder: me.code,
        };
        if (description.value.trim()) body.description = description.value.trim();
        if (Object.keys(customer).length) body.customer = customer;
        const docs = [...checklistItems.querySelectorAll('input:checked')].map((i) => i.value);
        if (docs.length) body.required_documents = docs;

        submit.disabled = true;
        submit.textContent = t('reg.sending');
        let reg;
        try {
            reg = await api('POST', '/v1/cases', body, { headers: { 'Idempotency-Key': idemKey } });
        } catch (err) {
            showApiError(errors, err, form);
            resetButton();
            return;
        }
        try {
            localStorage.setItem(CHANNEL_KEY, channel.value);
        } catch {
            /* not remembered */
        }

        let closedOnSpot = false;
        let spotError = null;
        if (onspot.checked) {
            try {
                await api('POST', `/v1/cases/${reg.id}/actions/resolve_on_spot`, { result: result.value.trim() }, { ifMatch: reg.version });
                closedOnSpot = true;
            } catch (err) {
                spotError = err;
            }
        }
        form.dataset.sent = '1';
        showDone(reg, onspot.checked, closedOnSpot, spotError);
        resetButton();
    });

    function resetButton() {
        submit.disabled = false;
        submit.textContent = onspot.checked ? t('reg.submit.onspot') : t('reg.submit');
    }

    function showDone(reg, wanted, closed, spotError) {
        const label = !wanted ? t('reg.done') : closed ? t('reg.done.onspot') : t('reg.done.onspot-failed');
        const box = el(
            'div',
            { class: 'notice-box notice-ok reg-done', testid: 'reg-done', role: 'status' },
            el('strong', {}, label),
            el('a', { href: '#/case/' + reg.id, testid: 'reg-number', class: 'reg-number' }, reg.number),
            el('div', {}, el('button', { type: 'button', class: 'btn', testid: 'reg-another', on: { click: resetForm } }, t('reg.another'))),
        );
        done.replaceChildren(box);
        if (spotError) showError(box, spotError);
        box.scrollIntoView({ block: 'nearest' });
    }

    function resetForm() {
        const keepChannel = channel.value;
        form.reset();
        channel.value = keepChannel;
        urgency.value = 'normal';
        type.value = '';
        showChecklist();
        resultField.hidden = true;
        resetButton();
        done.replaceChildren();
        delete form.dataset.sent;
        idemKey = uuid();
        name.focus();
    }

    root.appendChild(el('div', { class: 'register' }, done, form));
    channel.focus();
    return () => clearInterval(nowTimer);
}
