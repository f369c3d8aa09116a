/* handle_admin.c - the directory under /v1/sites (being written). */
#include "intake.h"

sw_err admin_run(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                 size_t errlen)
{
    (void)in, (void)db, (void)ob, (void)err, (void)errlen;
    job_reply_error(j, 501, "not implemented yet");
    return SW_OK;
}
