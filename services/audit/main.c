/*
 * shouwen-audit: keeps the hash-chained audit log and the QA reports.
 *
 * This file wires the service together: its settings table, and the
 * common start, loop and stop of svc.c.  What the service reacts to lives
 * in one file per event beside this one.
 */
#include "svc.h"

static const struct cfg_def settings[] = {
    SVC_COMMON_SETTINGS,
    SVC_ADMIN_SETTING("AUDIT", "127.0.0.1:7405"),
    SVC_PUB_SETTING("AUDIT", "ipc://{run}/audit.pub"),
};

static const struct svc_desc desc = {
    .name = "audit",
    .summary = "keeps the hash-chained audit log and the QA reports.",
    .settings = settings,
    .nsettings = sizeof(settings) / sizeof(settings[0]),
    .admin_env = "SHOUWEN_AUDIT_ADMIN_ADDR",
    .pub_env = "SHOUWEN_AUDIT_PUB_URL",
};

int main(int argc, char **argv)
{
    return svc_main(&desc, argc, argv);
}
