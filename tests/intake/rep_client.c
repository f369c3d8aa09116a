/*
 * rep_client - a real SubmitCase client of intake's REP socket, for the
 * integration tests (tests/integration/intake_rep_test.sh): nng REQ,
 * protobuf-c, one request, the reply printed as one line of JSON.
 *
 *   rep_client --url tcp://127.0.0.1:7410 [--timeout MS] [--key API_KEY]
 *       [--site SH01] [--channel NAME|NUMBER] [--type NAME|NUMBER]
 *       [--urgency NAME|NUMBER] [--subject TEXT] [--description TEXT]
 *       [--description-bytes N] [--category TEXT] [--name TEXT] [--phone TEXT]
 *       [--unit TEXT] [--address TEXT] [--room TEXT] [--email TEXT]
 *       [--doc TEXT]... [--first-responder CODE] [--external-ref REF]
 *       [--source TEXT] [--received-at US]
 *   rep_client --decode   reads a packed SubmitCaseReply on stdin (e.g. nngcat --raw)
 *
 * A tls+tcp:// URL uses the files named by SHOUWEN_TLS_CERT, SHOUWEN_TLS_KEY
 * and SHOUWEN_TLS_CA (and SHOUWEN_TLS_SERVER_NAME), as the services do.
 *
 * Enums take their API names ("phone") or a raw number (99: not a known
 * value).  --description-bytes N sends a description of N 'x' (to pass the
 * size limit).  Prints {"case_id":..,"number":..,"status":..,"version":..,
 * "duplicate":..} or {"error":{"code":"INVALID_ARGUMENT","message":..,
 * "field":..}} and exits 0 when a reply came; prints {"transport_error":..}
 * and exits 1 when none did; 2 for a bad command line.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "tls.h"
#include "workflow.h"
#include "shouwen/v1/intake.pb-c.h"

#define MAX_DOCS      256
#define MAX_REPLY     (1u << 20)
#define ERROR_PREFIX  "ERROR_CODE_"
#define STATUS_PREFIX "CASE_STATUS_"

static void usage(void)
{
    fprintf(stderr, "usage: rep_client --url URL [--key K] [--site S] [--channel C] [--type T] "
                    "[--urgency U] [--subject S] ... | rep_client --decode\n");
}

/* An enum argument: a name the table knows, or a number. */
static bool enum_arg(const char *s, bool (*parse)(const char *, int *), int *out)
{
    char *end = NULL;
    if (parse(s, out))
        return true;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 0 || v > 1000000)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_channel(const char *s, int *out)
{
    Shouwen__V1__Channel v;
    if (!wf_channel_parse(s, &v))
        return false;
    *out = (int)v;
    return true;
}

static bool parse_type(const char *s, int *out)
{
    Shouwen__V1__CaseType v;
    if (!wf_case_type_parse(s, &v))
        return false;
    *out = (int)v;
    return true;
}

static bool parse_urgency(const char *s, int *out)
{
    Shouwen__V1__Urgency v;
    if (!wf_urgency_parse(s, &v))
        return false;
    *out = (int)v;
    return true;
}

/* Print the reply as one line of JSON. */
static int print_reply(const uint8_t *data, size_t len)
{
    Shouwen__V1__SubmitCaseReply *r = shouwen__v1__submit_case_reply__unpack(NULL, len, data);
    json_t *o = json_object();
    int rc = 0;
    if (r == NULL) {
        json_object_set_new(o, "transport_error", json_string("reply is not a SubmitCaseReply"));
        rc = 1;
    } else if (r->error != NULL) {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
            &shouwen__v1__error_code__descriptor, (int)r->error->code);
        char num[16];
        const char *code = num;
        snprintf(num, sizeof(num), "%d", (int)r->error->code);
        if (ev != NULL)
            code = strncmp(ev->name, ERROR_PREFIX, strlen(ERROR_PREFIX)) == 0
                       ? ev->name + strlen(ERROR_PREFIX)
                       : ev->name;
        json_t *e = json_object();
        json_object_set_new(e, "code", json_string(code));
        json_object_set_new(e, "message", json_string(r->error->message));
        json_object_set_new(e, "field", json_string(r->error->field));
        json_object_set_new(o, "error", e);
    } else {
        const char *st = wf_status_name(r->status);
        json_object_set_new(o, "case_id", json_string(r->case_id));
        json_object_set_new(o, "number", json_string(r->number));
        json_object_set_new(o, "status", json_string(st != NULL ? st : ""));
        json_object_set_new(o, "version", json_integer(r->version));
        json_object_set_new(o, "duplicate", json_boolean(r->duplicate));
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", text != NULL ? text : "{\"transport_error\":\"out of memory\"}");
    free(text);
    json_decref(o);
    shouwen__v1__submit_case_reply__free_unpacked(r, NULL);
    return rc;
}

static int decode_stdin(void)
{
    static uint8_t data[MAX_REPLY];
    size_t len = fread(data, 1, sizeof(data), stdin);
    if (len == 0) {
        printf("{\"transport_error\":\"no reply\"}\n");
        return 1;
    }
    return print_reply(data, len);
}

static int fail(const char *what, int rv)
{
    json_t *o = json_pack("{s:s++}", "transport_error", what, ": ", nng_strerror(rv));
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", text != NULL ? text : "{\"transport_error\":\"?\"}");
    free(text);
    json_decref(o);
    return 1;
}

int main(int argc, char **argv)
{
    enum {
        O_URL = 256,
        O_TIMEOUT,
        O_KEY,
        O_SITE,
        O_CHANNEL,
        O_TYPE,
        O_URGENCY,
        O_SUBJECT,
        O_DESCRIPTION,
        O_DESCRIPTION_BYTES,
        O_CATEGORY,
        O_NAME,
        O_PHONE,
        O_UNIT,
        O_ADDRESS,
        O_ROOM,
        O_EMAIL,
        O_DOC,
        O_FIRST_RESPONDER,
        O_EXTERNAL_REF,
        O_SOURCE,
        O_RECEIVED_AT,
        O_DECODE,
    };
    static const struct option opts[] = {
        {"url", required_argument, NULL, O_URL},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"key", required_argument, NULL, O_KEY},
        {"site", required_argument, NULL, O_SITE},
        {"channel", required_argument, NULL, O_CHANNEL},
        {"type", required_argument, NULL, O_TYPE},
        {"urgency", required_argument, NULL, O_URGENCY},
        {"subject", required_argument, NULL, O_SUBJECT},
        {"description", required_argument, NULL, O_DESCRIPTION},
        {"description-bytes", required_argument, NULL, O_DESCRIPTION_BYTES},
        {"category", required_argument, NULL, O_CATEGORY},
        {"name", required_argument, NULL, O_NAME},
        {"phone", required_argument, NULL, O_PHONE},
        {"unit", required_argument, NULL, O_UNIT},
        {"address", required_argument, NULL, O_ADDRESS},
        {"room", required_argument, NULL, O_ROOM},
        {"email", required_argument, NULL, O_EMAIL},
        {"doc", required_argument, NULL, O_DOC},
        {"first-responder", required_argument, NULL, O_FIRST_RESPONDER},
        {"external-ref", required_argument, NULL, O_EXTERNAL_REF},
        {"source", required_argument, NULL, O_SOURCE},
        {"received-at", required_argument, NULL, O_RECEIVED_AT},
        {"decode", no_argument, NULL, O_DECODE},
        {NULL, 0, NULL, 0},
    };
    Shouwen__V1__SubmitCase m = SHOUWEN__V1__SUBMIT_CASE__INIT;
    Shouwen__V1__Customer cu = SHOUWEN__V1__CUSTOMER__INIT;
    char *docs[MAX_DOCS];
    const char *url = NULL;
    char *big = NULL;
    long big_len = -1;
    long timeout_ms = 10000;
    bool customer = false;
    int o, v, rc = 0, rv;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_URL:
            url = optarg;
            break;
        case O_TIMEOUT:
            timeout_ms = strtol(optarg, NULL, 10);
            break;
        case O_KEY:
            m.api_key = optarg;
            break;
        case O_SITE:
            m.site = optarg;
            break;
        case O_CHANNEL:
        case O_TYPE:
        case O_URGENCY:
            if (!enum_arg(optarg,
                          o == O_CHANNEL ? parse_channel
                                         : (o == O_TYPE ? parse_type : parse_urgency),
                          &v)) {
                fprintf(stderr, "rep_client: unknown value \"%s\"\n", optarg);
                return 2;
            }
            if (o == O_CHANNEL)
                m.channel = (Shouwen__V1__Channel)v;
            else if (o == O_TYPE)
                m.case_type = (Shouwen__V1__CaseType)v;
            else
                m.urgency = (Shouwen__V1__Urgency)v;
            break;
        case O_SUBJECT:
            m.subject = optarg;
            break;
        case O_DESCRIPTION:
            m.description = optarg;
            break;
        case O_DESCRIPTION_BYTES:
            big_len = strtol(optarg, NULL, 10);
            if (big_len < 0 || big_len > (64L << 20)) {
                fprintf(stderr, "rep_client: bad --description-bytes\n");
                return 2;
            }
            break;
        case O_CATEGORY:
            m.category = optarg;
            break;
        case O_NAME:
            cu.name = optarg;
            customer = true;
            break;
        case O_PHONE:
            cu.phone = optarg;
            customer = true;
            break;
        case O_UNIT:
            cu.unit = optarg;
            customer = true;
            break;
        case O_ADDRESS:
            cu.address = optarg;
            customer = true;
            break;
        case O_ROOM:
            cu.room = optarg;
            customer = true;
            break;
        case O_EMAIL:
            cu.email = optarg;
            customer = true;
            break;
        case O_DOC:
            if (m.n_required_documents >= MAX_DOCS) {
                fprintf(stderr, "rep_client: too many --doc\n");
                return 2;
            }
            docs[m.n_required_documents++] = optarg;
            m.required_documents = docs;
            break;
        case O_FIRST_RESPONDER:
            m.first_responder = optarg;
            break;
        case O_EXTERNAL_REF:
            m.external_ref = optarg;
            break;
        case O_SOURCE:
            m.source = optarg;
            break;
        case O_RECEIVED_AT:
            m.received_at = strtoll(optarg, NULL, 10);
            break;
        case O_DECODE:
            return decode_stdin();
        default:
            usage();
            return 2;
        }
    }
    if (url == NULL || optind != argc) {
        usage();
        return 2;
    }
    if (customer)
        m.customer = &cu;
    if (big_len >= 0) {
        if ((big = malloc((size_t)big_len + 1)) == NULL) {
            fprintf(stderr, "rep_client: out of memory\n");
            return 1;
        }
        memset(big, 'x', (size_t)big_len);
        big[big_len] = '\0';
        m.description = big;
    }

    nng_socket sock = NNG_SOCKET_INITIALIZER;
    nng_msg *msg = NULL;
    size_t len = shouwen__v1__submit_case__get_packed_size(&m);
    if ((rv = nng_req0_open(&sock)) != 0) {
        rc = fail("could not open a REQ socket", rv);
        goto out;
    }
    if ((rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, (nng_duration)timeout_ms)) != 0 ||
        (rv = nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, (nng_duration)timeout_ms)) != 0 ||
        /* never resend: each run is one submission (resending is safe, but counts twice) */
        (rv = nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
        (rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, MAX_REPLY)) != 0) {
        rc = fail("could not set socket options", rv);
        goto out;
    }
    if (tls_url(url)) {
        char terr[512];
        const char *e[4] = {getenv("SHOUWEN_TLS_CERT"), getenv("SHOUWEN_TLS_KEY"),
                            getenv("SHOUWEN_TLS_CA"), getenv("SHOUWEN_TLS_SERVER_NAME")};
        if (tls_configure(e[0] ? e[0] : "", e[1] ? e[1] : "", e[2] ? e[2] : "", e[3] ? e[3] : "",
                          terr, sizeof(terr)) != SW_OK) {
            rc = fail(terr, NNG_EINVAL);
            goto out;
        }
    }
    if ((rv = tls_dial(sock, url, 0)) != 0) {
        rc = fail("could not dial", rv);
        goto out;
    }
    if ((rv = nng_msg_alloc(&msg, len)) != 0) {
        rc = fail("could not allocate the request", rv);
        goto out;
    }
    shouwen__v1__submit_case__pack(&m, nng_msg_body(msg));
    if ((rv = nng_sendmsg(sock, msg, 0)) != 0) {
        nng_msg_free(msg);
        rc = fail("could not send", rv);
        goto out;
    }
    msg = NULL;
    if ((rv = nng_recvmsg(sock, &msg, 0)) != 0) {
        rc = fail("no reply", rv);
        goto out;
    }
    rc = print_reply(nng_msg_body(msg), nng_msg_len(msg));
    nng_msg_free(msg);
out:
    nng_close(sock);
    tls_fini();
    free(big);
    fflush(stdout);
    return rc;
}
