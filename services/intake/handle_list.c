/* handle_list.c - GET /v1/cases and GET /v1/cases/{id}/history (being written). */
#include "intake.h"

sw_err case_list(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                 size_t errlen)
{
    (void)in, (void)db, (void)ob, (void)err, (void)errlen;
    job_reply_error(j, 501, "not implemented yet");
    return SW_OK;
}

sw_err case_history(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                    size_t errlen)
{
    (void)in, (void)db, (void)ob, (void)err, (void)errlen;
    job_reply_error(j, 501, "not implemented yet");
    return SW_OK;
}
