// Talking to intake: the session, every API call, the live event stream and
// the site's directory. Views never call fetch() themselves: api() adds the
// bearer token, turns every failure into an ApiError with a sentence a person
// can act on, and sends an expired session (401) back to the sign-in screen.
//
// The session lives in sessionStorage (`shouwen.session`): it survives a
// reload of the tab but not closing it, and each tab signs in on its own.

import { t } from './i18n.js';

const SESSION_KEY = 'shouwen.session';
const FLASH_KEY = 'shouwen.flash';

/**
 * A failed call. status: the HTTP status, 0 for a lost connection.
 * message: a translated sentence for a person. reason: the server's own
 * `error` text (the rule's reason for 403/409), or ''. fields: for 422,
 * [{field, message}] as the server named them, else []. etag: the current
 * version the server sent with a 412, or null.
 */
export class ApiError extends Error {
    constructor(status, reason, fields, etag) {
        super(humanMessage(status));
        this.name = 'ApiError';
        this.status = status;
        this.reason = reason || '';
        this.fields = fields || [];
        this.etag = etag || null;
    }
}

function humanMessage(status) {
    if (status === 0) return t('err.network');
    const known = [400, 401, 403, 404, 409, 412, 413, 422, 428, 429, 503];
    if (known.includes(status)) return t('err.' + status);
    if (status >= 500) return t('err.5xx');
    return t('err.other', { status });
}

// ------------------------------------------------------------------ session

let current = load();

function load() {
    try {
        const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
        if (s && s.token && s.staff && s.site) return s;
    } catch {
        /* unreadable: signed out */
    }
    return null;
}

function store(s) {
    current = s;
    try {
        if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
        else sessionStorage.removeItem(SESSION_KEY);
    } catch {
        /* storage disabled: the session lasts as long as the page */
    }
    window.dispatchEvent(new CustomEvent('shouwen:session', { detail: s }));
}

/**
 * The signed-in session: {token, expires_at, staff: {code, name, role,
 * department}, site: {code, name, time_zone}}, or null.
 */
export function session() {
    return current;
}

/**
 * A message for the sign-in screen, kept across the redirect to it
 * ('expired', 'signedout'); takeFlash() reads it once.
 */
export function setFlash(kind) {
    try {
        sessionStorage.setItem(FLASH_KEY, kind);
    } catch {
        /* lost: the screen just shows no message */
    }
}

export function takeFlash() {
    try {
        const f = sessionStorage.getItem(FLASH_KEY);
        sessionStorage.removeItem(FLASH_KEY);
        return f;
    } catch {
        return null;
    }
}

/** Drops the session and goes to the sign-in screen saying why. */
function expire() {
    if (!current) return;
    stopStream();
    store(null);
    clearDirectory();
    setFlash('expired');
    location.hash = '#/login';
}

/**
 * Signs in (POST /v1/session). Resolves to the session; throws ApiError
 * (401 wrong credentials, 422 field errors, 0 lost connection).
 */
export async function signIn(site, staff, password) {
    const s = await api('POST', '/v1/session', { site, staff, password }, { anonymous: true });
    store(s);
    return s;
}

/**
 * Signs in with a token an administrator issued: GET /v1/session tells who
 * it belongs to.
 */
export async function signInWithToken(token) {
    const s = await api('GET', '/v1/session', null, { anonymous: true, token });
    store({ ...s, token });
    return current;
}

/**
 * Checks the kept session with the server (GET /v1/session) and refreshes
 * who the person is. A 401 drops it (api() does); another failure keeps it,
 * as the network may only be down for a moment.
 */
export async function validateSession() {
    if (!current) return null;
    const s = await api('GET', '/v1/session');
    store({ ...current, ...s, token: current.token });
    return current;
}

/** Signs out: revokes the token (DELETE /v1/session) and forgets it. */
export async function signOut() {
    const s = current;
    stopStream();
    store(null);
    clearDirectory();
    setFlash('signedout');
    if (s) {
        try {
            await api('DELETE', '/v1/session', null, { anonymous: true, token: s.token });
        } catch {
            /* the token expires anyway; the person is signed out here */
        }
    }
}

// ------------------------------------------------------------------ calls

/**
 * One API call. method: 'GET', 'POST', ...; path: starting with /v1/ (a
 * query string included); body: an object sent as JSON, or null.
 * opts: {ifMatch: version, headers: {...}, anonymous: true (no session token,
 * and a 401 does not sign out), token: a token to use instead of the
 * session's}. Resolves to the parsed JSON answer (null for 204 or an empty
 * body); the answer's ETag is on the result as a non-enumerable `_etag`.
 * Throws ApiError.
 */
export async function api(method, path, body, opts = {}) {
    const headers = { Accept: 'application/json', ...(opts.headers || {}) };
    const token = opts.token || (!opts.anonymous && current ? current.token : null);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (opts.ifMatch !== undefined && opts.ifMatch !== null) headers['If-Match'] = '"' + opts.ifMatch + '"';
    const init = { method, headers, cache: 'no-store' };
    if (body !== null && body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
    }

    let res;
    try {
        res = await fetch(path, init);
    } catch {
        throw new ApiError(0);
    }

    let data = null;
    const text = await res.text().catch(() => '');
    if (text) {
        try {
            data = JSON.parse(text);
        } catch {
            data = null; // not JSON (a proxy's page): never shown as it is
        }
    }
    if (!res.ok) {
        if (res.status === 401 && !opts.anonymous) expire();
        const etag = (res.headers.get('ETag') || '').replace(/[^0-9]/g, '') || null;
        throw new ApiError(
            res.status,
            data && typeof data.error === 'string' ? data.error : '',
            data && Array.isArray(data.fields) ? data.fields : [],
            etag,
        );
    }
    if (data && typeof data === 'object') {
        Object.defineProperty(data, '_etag', { value: res.headers.get('ETag'), enumerable: false });
    }
    return data;
}

/** encodeURIComponent for one path segment or query value. */
export const enc = encodeURIComponent;

/** The path of a site resource: sitePath('staff') -> /v1/sites/SH01/staff. */
export function sitePath(rest) {
    return '/v1/sites/' + enc(current ? current.site.code : '') + '/' + rest;
}

// ------------------------------------------------------------------ directory

// The site's departments and staff change rarely: read once per session
// (and again after reloadDirectory()), shared by every view.
let directoryPromise = null;

function clearDirectory() {
    directoryPromise = null;
}

async function allPages(path, member) {
    const out = [];
    let after = null;
    for (let i = 0; i < 20; i++) {
        const page = await api('GET', sitePath(path + '?limit=500' + (after ? '&after=' + enc(after) : '')));
        out.push(...(page[member] || []));
        if (!page.next) break;
        after = page.next;
    }
    return out;
}

/**
 * The site's directory: {departments: [...], staff: [...], dept(code),
 * person(code)} (the two lookups return the item or null). Rejects with
 * ApiError; a failed read is tried again on the next call.
 */
export function directory() {
    if (!directoryPromise) {
        directoryPromise = Promise.all([allPages('departments', 'departments'), allPages('staff', 'staff')]).then(
            ([departments, staff]) => {
                const d = new Map(departments.map((x) => [x.code, x]));
                const p = new Map(staff.map((x) => [x.code, x]));
                return {
                    departments,
                    staff,
                    dept: (code) => d.get(code) || null,
                    person: (code) => p.get(code) || null,
                };
            },
        );
        directoryPromise.catch(() => {
            directoryPromise = null;
        });
    }
    return directoryPromise;
}

/** The directory, or an empty one when it cannot be read (names then show as codes). */
export async function directoryOrEmpty() {
    try {
        return await directory();
    } catch {
        return { departments: [], staff: [], dept: () => null, person: () => null };
    }
}

// ------------------------------------------------------------------ checklists

let checklistPromise = null;

/**
 * The site's one-go checklists by case type ({business: [...], ...}); {} when
 * the site has none or they cannot be read.
 */
export function checklists() {
    if (!checklistPromise) {
        checklistPromise = api('GET', sitePath('checklists'))
            .then((r) => (r && r.checklists) || {})
            .catch((e) => {
                checklistPromise = null;
                if (e.status === 401) throw e;
                return {};
            });
    }
    return checklistPromise;
}

// ------------------------------------------------------------------ live events

// GET /v1/stream is text/event-stream. EventSource cannot send the bearer
// header, so it is read with fetch() and a stream reader. One connection per
// page, started after sign-in; when it drops it is opened again after 1 s,
// 2 s, 4 s ... at most 30 s, and every listener gets a synthetic
// {type: 'stream.reconnected', case: null} so that views refetch what they
// may have missed.

const caseListeners = new Set();
const connListeners = new Set();
let connState = 'connecting';
let streamAbort = null;
let retryTimer = null;
let retryDelay = 1000;
let everConnected = false;
// The server sends a `: ping` every 15 s: a connection silent for 40 s is
// dead even if the socket does not say so (a phone that changed networks).
const SILENCE_MS = 40000;

/**
 * Calls fn({type, case, at}) for every live case event of the site.
 * Returns the function that stops it.
 */
export function onCaseEvent(fn) {
    caseListeners.add(fn);
    return () => caseListeners.delete(fn);
}

/** Calls fn(state) now and on every change: 'connecting', 'live' or 'lost'. */
export function onConnState(fn) {
    connListeners.add(fn);
    fn(connState);
    return () => connListeners.delete(fn);
}

function setConn(s) {
    if (s === connState) return;
    connState = s;
    for (const fn of connListeners) fn(s);
}

function emit(ev) {
    for (const fn of caseListeners) {
        try {
            fn(ev);
        } catch (e) {
            console.error('case event listener failed', e);
        }
    }
}

/** Opens the live stream (once; a second call does nothing). */
export function startStream() {
    if (streamAbort || retryTimer || !current) return;
    setConn('connecting');
    connect();
}

/** Closes the live stream and stops reconnecting. */
export function stopStream() {
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = null;
    if (streamAbort) streamAbort.abort();
    streamAbort = null;
    everConnected = false;
    retryDelay = 1000;
    setConn('lost');
}

function scheduleReconnect() {
    streamAbort = null;
    if (!current) return;
    setConn('lost');
    retryTimer = setTimeout(() => {
        retryTimer = null;
        connect();
    }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
}

async function connect() {
    const ctl = new AbortController();
    streamAbort = ctl;
    // After a drop the header keeps saying "lost" until the server says hello.
    if (connState !== 'lost') setConn('connecting');
    // Nothing for SILENCE_MS (no answer, no ping): the connection is dead
    // even if the socket does not say so; drop it and connect again.
    let lastByte = Date.now();
    let silent = false;
    const watchdog = setInterval(() => {
        if (Date.now() - lastByte > SILENCE_MS) {
            silent = true;
            ctl.abort();
        }
    }, 5000);
    try {
        await readStream(ctl, () => {
            lastByte = Date.now();
        });
    } catch {
        /* dropped or refused: reconnect below, unless stopStream() aborted it */
    }
    clearInterval(watchdog);
    // Reconnect unless stopStream() or a 401 ended it (or a newer connection took over).
    if (streamAbort === ctl && (!ctl.signal.aborted || silent)) scheduleReconnect();
}

/** One connection to /v1/stream, read until it ends; alive() on every chunk. */
async function readStream(ctl, alive) {
    const res = await fetch('/v1/stream', {
        headers: { Authorization: 'Bearer ' + current.token, Accept: 'text/event-stream' },
        cache: 'no-store',
        signal: ctl.signal,
    });
    if (res.status === 401) {
        streamAbort = null;
        expire();
        return;
    }
    if (!res.ok || !res.body) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        alive();
        buf += decoder.decode(value, { stream: true });
        // Events are separated by a blank line (LF or CRLF).
        let cut;
        while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
            handleBlock(block);
        }
        if (buf.length > 1 << 20) buf = ''; // a runaway line: drop it, keep reading
    }
}

function handleBlock(block) {
    let event = 'message';
    const data = [];
    for (const line of block.split(/\r?\n/)) {
        if (line === '' || line.startsWith(':')) continue; // a comment: the ping
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
    }
    if (event === 'hello') {
        retryDelay = 1000;
        setConn('live');
        if (everConnected) emit({ type: 'stream.reconnected', case: null, at: new Date().toISOString() });
        everConnected = true;
    } else if (event === 'case' && data.length) {
        try {
            const ev = JSON.parse(data.join('\n'));
            if (ev && typeof ev.type === 'string') emit(ev);
        } catch {
            /* a malformed event: ignored, the 60 s refresh catches up */
        }
    }
}
