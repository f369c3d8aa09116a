/*
 * shouwen-notification: tells the right people, over webhooks, mail, SMS and chat.
 *
 * This file wires the service together: its settings table, and the
 * common start, loop and stop of svc.c.  What the service reacts to lives
 * in one file per event beside this one.
 */
#include "svc.h"

static const struct cfg_def settings[] = {
    SVC_COMMON_SETTINGS,
    SVC_ADMIN_SETTING("NOTIFICATION", "127.0.0.1:7404"),
    SVC_PUB_SETTING("NOTIFICATION", "ipc://{run}/notification.pub"),
};

static const struct svc_desc desc = {
    .name = "notification",
    .summary = "tells the right people, over webhooks, mail, SMS and chat.",
    .settings = settings,
    .nsettings = sizeof(settings) / sizeof(settings[0]),
    .admin_env = "SHOUWEN_NOTIFICATION_ADMIN_ADDR",
    .pub_env = "SHOUWEN_NOTIFICATION_PUB_URL",
};

int main(int argc, char **argv)
{
    return svc_main(&desc, argc, argv);
}
