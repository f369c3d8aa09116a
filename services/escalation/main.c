/*
 * shouwen-escalation: keeps the clocks: deadlines, breaches and the escalation ladder.
 *
 * This file wires the service together: its settings table, and the
 * common start, loop and stop of svc.c.  What the service reacts to lives
 * in one file per event beside this one.
 */
#include "svc.h"

static const struct cfg_def settings[] = {
    SVC_COMMON_SETTINGS,
    SVC_ADMIN_SETTING("ESCALATION", "127.0.0.1:7403"),
    SVC_PUB_SETTING("ESCALATION", "ipc://{run}/escalation.pub"),
};

static const struct svc_desc desc = {
    .name = "escalation",
    .summary = "keeps the clocks: deadlines, breaches and the escalation ladder.",
    .settings = settings,
    .nsettings = sizeof(settings) / sizeof(settings[0]),
    .admin_env = "SHOUWEN_ESCALATION_ADMIN_ADDR",
    .pub_env = "SHOUWEN_ESCALATION_PUB_URL",
};

int main(int argc, char **argv)
{
    return svc_main(&desc, argc, argv);
}
