// The console's shell: the header (who is signed in, the navigation their
// role may use, the live connection, the language switch, sign out) and the
// hash router that loads one view module at a time into <main>.
//
// A view module exports `async render(root, ctx)`: root is an empty element
// to fill, ctx is {session, navigate(hash), t, params, route, afterSignIn};
// it may return a cleanup function, called when the person leaves the view
// (stop timers, unsubscribe from live events). Views are imported on first use, so a view
// that fails to load (or does not exist yet) shows a friendly message and
// the rest of the console keeps working.

import { t, lang, setLang } from './i18n.js';
import {
    session,
    validateSession,
    signOut,
    startStream,
    stopStream,
    onConnState,
    api,
} from './api.js';
import { el, clear, showError, startClockTicker } from './util.js';

// Route name -> module, and who sees it in the navigation. `roles` null:
// everyone signed in; `needsDepartment`: only people with a department.
const ROUTES = {
    login: { module: './views/login.js', public: true },
    register: { module: './views/register.js', nav: 'nav-register', label: 'nav.register' },
    my: { module: './views/my.js', nav: 'nav-my', label: 'nav.my' },
    // The queue is for the people of a department who receive its cases;
    // a receptionist works from My work (the front desk's routed cases go
    // to its head, the supervisor).
    queue: {
        module: './views/queue.js',
        nav: 'nav-queue',
        label: 'nav.queue',
        needsDepartment: true,
        roles: ['staff', 'department_head', 'handler', 'supervisor', 'manager', 'qa', 'leader'],
    },
    case: { module: './views/case.js' },
    supervisor: {
        module: './views/supervisor.js',
        nav: 'nav-supervisor',
        label: 'nav.supervisor',
        roles: ['supervisor', 'manager'],
    },
    manager: { module: './views/manager.js', nav: 'nav-manager', label: 'nav.manager', roles: ['manager'] },
    qa: { module: './views/qa.js', nav: 'nav-qa', label: 'nav.qa', roles: ['qa', 'supervisor', 'manager'] },
};
const NAV_ORDER = ['register', 'my', 'queue', 'supervisor', 'manager', 'qa'];
const DEFAULT_ROUTE = '#/my';
const NEXT_KEY = 'shouwen.next';

const shellEl = document.getElementById('shell');
const mainEl = document.getElementById('view');

let cleanup = null; // the current view's cleanup function
let renderSeq = 0; // bumps on every navigation; a slow render of an old route is dropped
let connUnsub = null;
let expiryTimer = null;

/** Goes to a hash route ('#/case/<id>'); the same route again re-renders it. */
function navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
}

function parseHash() {
    const h = location.hash.replace(/^#\/?/, '');
    const [name, ...rest] = h.split('/');
    return { name: name || '', params: { id: rest.length ? decodeURIComponent(rest.join('/')) : null } };
}

/** Whether the signed-in person's navigation shows this route. */
function visible(r, s) {
    if (!s || !r.nav) return false;
    if (r.roles && !r.roles.includes(s.staff.role)) return false;
    if (r.needsDepartment && !s.staff.department) return false;
    return true;
}

// ------------------------------------------------------------------ header

function renderShell() {
    const s = session();
    const current = parseHash().name;
    clear(shellEl);
    document.title = t('app.title');

    const langBtn = el(
        'button',
        { type: 'button', class: 'btn-link lang-switch', testid: 'lang-switch', lang: lang() === 'zh' ? 'en' : 'zh', on: { click: () => setLang(lang() === 'zh' ? 'en' : 'zh') } },
        t('lang.switch'),
    );
    const top = el('div', { class: 'shell-top' }, el('a', { class: 'brand', href: s ? DEFAULT_ROUTE : '#/login' }, t('app.brand')));
    shellEl.appendChild(top);

    if (!s) {
        top.appendChild(el('div', { class: 'shell-tools' }, langBtn));
        return;
    }

    const conn = el('span', { class: 'conn-status', testid: 'conn-status', role: 'status' });
    if (connUnsub) connUnsub();
    connUnsub = onConnState((state) => {
        conn.dataset.state = state;
        conn.textContent = t('conn.' + state);
    });

    top.appendChild(
        el(
            'div',
            { class: 'shell-tools' },
            el(
                'span',
                { class: 'whoami', testid: 'whoami' },
                t('whoami', { name: s.staff.name, code: s.staff.code, role: t('role.' + s.staff.role) }),
            ),
            conn,
            langBtn,
            el('button', { type: 'button', class: 'btn-link', testid: 'signout', on: { click: doSignOut } }, t('nav.signout')),
        ),
    );

    const nav = el('nav', { class: 'nav', 'aria-label': t('nav.menu') });
    for (const name of NAV_ORDER) {
        const r = ROUTES[name];
        if (!visible(r, s)) continue;
        nav.appendChild(
            el(
                'a',
                { href: '#/' + name, testid: r.nav, class: 'nav-item', 'aria-current': current === name ? 'page' : null },
                t(r.label),
            ),
        );
    }
    shellEl.appendChild(nav);
}

async function doSignOut() {
    await signOut();
    location.hash = '#/login';
}

// ------------------------------------------------------------------ router

async function route() {
    const seq = ++renderSeq;
    const { name, params } = parseHash();
    const s = session();

    if (!s && name !== 'login') {
        if (name) {
            try {
                sessionStorage.setItem(NEXT_KEY, location.hash);
            } catch {
                /* forgotten: the default route after sign-in */
            }
        }
        location.hash = '#/login';
        return;
    }
    if (s && (name === 'login' || !name)) {
        location.hash = DEFAULT_ROUTE;
        return;
    }

    if (cleanup) {
        try {
            cleanup();
        } catch (e) {
            console.error('view cleanup failed', e);
        }
        cleanup = null;
    }
    renderShell();
    const root = el('div', { class: 'view-root view-' + (name || 'none') });
    clear(mainEl).appendChild(root);
    window.scrollTo(0, 0);

    const r = ROUTES[name];
    if (!r) {
        showError(root, t('view.unknown'));
        return;
    }
    let mod;
    try {
        mod = await import(r.module);
    } catch (e) {
        console.error('could not load view', r.module, e);
        if (seq === renderSeq) showError(root, t('view.missing', { name }));
        return;
    }
    if (seq !== renderSeq) return;
    const ctx = { session: session(), navigate, t, params, route: name, afterSignIn };
    try {
        const c = await mod.render(root, ctx);
        if (typeof c === 'function') {
            if (seq === renderSeq) cleanup = c;
            else c(); // the person already moved on
        }
    } catch (e) {
        if (seq === renderSeq && root.isConnected) showError(root, e);
    }
}

/** After sign-in: where the person wanted to go, else My work. */
function afterSignIn() {
    let next = null;
    try {
        next = sessionStorage.getItem(NEXT_KEY);
        sessionStorage.removeItem(NEXT_KEY);
    } catch {
        /* none */
    }
    navigate(next && !next.startsWith('#/login') ? next : DEFAULT_ROUTE);
}

// Expiry: when the session's time is up, ask the server; its 401 takes the
// person to the sign-in screen with the "expired" message (api.js).
function armExpiry(s) {
    clearTimeout(expiryTimer);
    if (!s || !s.expires_at) return;
    const ms = Date.parse(s.expires_at) - Date.now();
    if (isNaN(ms)) return;
    // setTimeout takes at most 2^31-1 ms (24.8 days); later expiries wait for a reload.
    if (ms < 0x7fffffff) {
        expiryTimer = setTimeout(() => {
            api('GET', '/v1/session').catch(() => {});
        }, Math.max(ms + 1000, 0));
    }
}

function onSession(e) {
    const s = e.detail;
    armExpiry(s);
    if (s) startStream();
    else stopStream();
}

async function start() {
    startClockTicker();
    window.addEventListener('hashchange', route);
    window.addEventListener('shouwen:lang', () => route());
    window.addEventListener('shouwen:session', onSession);

    if (session()) {
        // A kept session: make sure it is still good before showing anything.
        try {
            await validateSession();
        } catch {
            /* 401 already went to the sign-in screen; a network failure keeps it */
        }
        if (session()) {
            armExpiry(session());
            startStream();
        }
    }
    route();
}

start();
