/*
 * sitecal.h - a site's working calendar as the database keeps it
 * (escalation.calendars and calendar_days), for every service that needs
 * to know when a site works: escalation's clocks, notification's quiet
 * hours.
 */
#ifndef SHOUWEN_SITECAL_H
#define SHOUWEN_SITECAL_H

#include <stddef.h>

#include <libpq-fe.h>

#include "calendar.h"
#include "err.h"

/*
 * sitecal_load reads site `code`: its id (37 bytes), time zone (65 bytes)
 * and calendar into `cal` (initialised here; free with cal_free).  A site
 * without a calendar works Monday to Friday, 09:00-18:00 in its time
 * zone; so does one whose calendar cannot be used (changed behind the
 * API's back), and that is logged under `tag` ("ESCALATION-CALENDAR").
 * SW_ENOTFOUND: no such site.
 */
sw_err sitecal_load(PGconn *db, const char *code, const char *tag, char *id, char *tz,
                    struct calendar *cal, char *err, size_t errlen);

#endif
