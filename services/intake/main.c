/*
 * shouwen-intake: the front door: registers cases from people and systems and applies their
 * commands.
 *
 * This file wires the service together: its settings table, and the
 * common start, loop and stop of svc.c.  What the service reacts to lives
 * in one file per event beside this one.
 */
#include "svc.h"

static const struct cfg_def settings[] = {
    SVC_COMMON_SETTINGS,
    SVC_ADMIN_SETTING("INTAKE", "127.0.0.1:7401"),
    SVC_PUB_SETTING("INTAKE", "ipc://{run}/intake.pub"),
};

static const struct svc_desc desc = {
    .name = "intake",
    .summary =
        "the front door: registers cases from people and systems and applies their commands.",
    .settings = settings,
    .nsettings = sizeof(settings) / sizeof(settings[0]),
    .admin_env = "SHOUWEN_INTAKE_ADMIN_ADDR",
    .pub_env = "SHOUWEN_INTAKE_PUB_URL",
};

int main(int argc, char **argv)
{
    return svc_main(&desc, argc, argv);
}
