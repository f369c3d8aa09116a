// The sign-in screen: site code, staff code and password (POST /v1/session),
// or a token an administrator issued. Says why the person is here when the
// session expired or they signed out. The site code is remembered on this
// device (localStorage `shouwen.site`), as a desk signs in to one site.

import { signIn, signInWithToken, takeFlash } from '../api.js';
import { el, field, showApiError, clearError, showNotice } from '../util.js';

const SITE_KEY = 'shouwen.site';

function rememberedSite() {
    try {
        return localStorage.getItem(SITE_KEY) || 'SH01';
    } catch {
        return 'SH01';
    }
}

export async function render(root, ctx) {
    const { t } = ctx;
    const flash = takeFlash();

    const site = el('input', { testid: 'login-site', name: 'site', autocomplete: 'organization', autocapitalize: 'characters', value: rememberedSite(), required: true });
    const staff = el('input', { testid: 'login-staff', name: 'staff', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true });
    const password = el('input', { testid: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const submit = el('button', { type: 'submit', class: 'btn btn-primary btn-block', testid: 'login-submit' }, t('login.submit'));
    const errors = el('div', { class: 'login-errors' });

    const form = el(
        'form',
        { class: 'card login-form', novalidate: true },
        el('h1', {}, t('login.title')),
        el('p', { class: 'muted' }, t('login.hint')),
        errors,
        field(t('login.site'), site, 'site'),
        field(t('login.staff'), staff, 'staff'),
        field(t('login.password'), password, 'password'),
        submit,
    );

    form.addEventListener('submit', async (e) => {
        e.preventDefault();
        clearError(errors);
        clearError(form);
        const siteCode = site.value.trim().toUpperCase();
        submit.disabled = true;
        try {
            await signIn(siteCode, staff.value.trim(), password.value);
            try {
                localStorage.setItem(SITE_KEY, siteCode);
            } catch {
                /* not remembered */
            }
            ctx.afterSignIn();
        } catch (err) {
            password.value = '';
            loginError(errors, err, form, t);
            submit.disabled = false;
        }
    });

    // Sign-in with an administrator's token, folded away: most people use a password.
    const token = el('input', { name: 'token', type: 'password', autocomplete: 'off', testid: 'login-token' });
    const tokenErrors = el('div');
    const tokenForm = el(
        'form',
        { class: 'token-form', novalidate: true },
        tokenErrors,
        field(t('login.token.field'), token, 'token'),
        el('button', { type: 'submit', class: 'btn btn-block', testid: 'login-token-submit' }, t('login.token.submit')),
    );
    tokenForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        clearError(tokenErrors);
        try {
            await signInWithToken(token.value.trim());
            ctx.afterSignIn();
        } catch (err) {
            loginError(tokenErrors, err, tokenForm, t);
        }
    });

    root.appendChild(
        el(
            'div',
            { class: 'login' },
            form,
            el('details', { class: 'card token-login' }, el('summary', {}, t('login.token')), tokenForm),
        ),
    );
    if (flash === 'expired') showNotice(form, t('login.expired'), 'info', 'login-notice');
    else if (flash === 'signedout') showNotice(form, t('login.signedout'), 'info', 'login-notice');
    (flash || site.value ? staff : site).focus();
}

/** A sign-in failure as `login-error` (a 401 is the wrong-credentials sentence). */
function loginError(box, err, form, t) {
    if (err && err.status === 401) {
        err = { name: 'ApiError', message: t('login.wrong'), reason: '', fields: [] };
    }
    showApiError(box, err, form);
    const b = box.querySelector('.error-box');
    if (b) b.dataset.testid = 'login-error';
}
