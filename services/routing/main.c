/*
 * shouwen-routing: gives every case the right owner and signs every transfer.
 *
 * This file wires the service together: its settings table, and the
 * common start, loop and stop of svc.c.  What the service reacts to lives
 * in one file per event beside this one.
 */
#include "svc.h"

static const struct cfg_def settings[] = {
    SVC_COMMON_SETTINGS,
    SVC_ADMIN_SETTING("ROUTING", "127.0.0.1:7402"),
    SVC_PUB_SETTING("ROUTING", "ipc://{run}/routing.pub"),
};

static const struct svc_desc desc = {
    .name = "routing",
    .summary = "gives every case the right owner and signs every transfer.",
    .settings = settings,
    .nsettings = sizeof(settings) / sizeof(settings[0]),
    .admin_env = "SHOUWEN_ROUTING_ADMIN_ADDR",
    .pub_env = "SHOUWEN_ROUTING_PUB_URL",
};

int main(int argc, char **argv)
{
    return svc_main(&desc, argc, argv);
}
