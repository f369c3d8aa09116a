/*
 * words.c - what a message says: the built-in wording of each event in
 * zh-CN and en (a site's own templates come first), and the variables an
 * event gives a template, with customer data masked for recipients who do
 * not work the case.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "notification.h"
#include "workflow.h"

#define EV(x) SHOUWEN__V1__ENVELOPE__EVENT_##x

struct wording {
    const char *event;
    const char *zh_subject, *zh_body;
    const char *en_subject, *en_body;
};

// clang-format off
static const struct wording builtin[] = {
    {"case.registered",
     "新登记 {{case_number}}", "{{site}} 新登记{{case_type}}（{{urgency}}）{{case_number}}：{{subject}}。首问责任人：{{first_responder}}。",
     "New case {{case_number}}", "{{site}}: new {{case_type}} ({{urgency}}) {{case_number}}: {{subject}}. First responder: {{first_responder}}."},
    {"case.assigned",
     "分派 {{case_number}}", "案件 {{case_number}}（{{case_type}}，{{urgency}}）已分派给 {{owner}}（{{department}}）：{{subject}}。客户：{{customer_name}} {{customer_phone}} {{room}}。",
     "Assigned {{case_number}}", "Case {{case_number}} ({{case_type}}, {{urgency}}) is assigned to {{owner}} ({{department}}): {{subject}}. Customer: {{customer_name}} {{customer_phone}} {{room}}."},
    {"case.transferred",
     "转办 {{case_number}}", "{{from_department}} 将案件 {{case_number}}（{{case_type}}，{{urgency}}）转至 {{department}}：{{subject}}。原因：{{reason}}。客户：{{customer_name}} {{customer_phone}} {{room}}。请及时指派经办人，不得推诿。",
     "Transfer {{case_number}}", "{{from_department}} transferred case {{case_number}} ({{case_type}}, {{urgency}}) to {{department}}: {{subject}}. Reason: {{reason}}. Customer: {{customer_name}} {{customer_phone}} {{room}}. Please appoint a handler."},
    {"case.forwarded",
     "转交 {{case_number}}", "{{from_department}} 将案件 {{case_number}} 转交 {{department}}：{{subject}}。原因：{{reason}}。请及时指派经办人。",
     "Forwarded {{case_number}}", "{{from_department}} forwarded case {{case_number}} to {{department}}: {{subject}}. Reason: {{reason}}. Please appoint a handler."},
    {"case.returned",
     "退回 {{case_number}}", "{{from_department}} 退回案件 {{case_number}}：{{subject}}。原因：{{reason}}。",
     "Returned {{case_number}}", "{{from_department}} returned case {{case_number}}: {{subject}}. Reason: {{reason}}."},
    {"case.accepted",
     "请处理 {{case_number}}", "您被指派为案件 {{case_number}}（{{case_type}}，{{urgency}}）的经办人：{{subject}}。客户：{{customer_name}} {{customer_phone}} {{room}}。请在一个工作日内联系客户。",
     "Please handle {{case_number}}", "You are the handler of case {{case_number}} ({{case_type}}, {{urgency}}): {{subject}}. Customer: {{customer_name}} {{customer_phone}} {{room}}. Contact the customer within one working day."},
    {"case.lead_designated",
     "主办/协办 {{case_number}}", "案件 {{case_number}}：{{subject}}。主办部门：{{department}}。{{reason}}",
     "Lead department {{case_number}}", "Case {{case_number}}: {{subject}}. Lead department: {{department}}. {{reason}}"},
    {"case.escalated",
     "升级 {{case_number}}", "案件 {{case_number}}（{{subject}}）已升级至{{level}}，现由 {{owner}} 负责。原因：{{reason}}",
     "Escalated {{case_number}}", "Case {{case_number}} ({{subject}}) is escalated to the {{level}}; {{owner}} is now accountable. Reason: {{reason}}"},
    {"case.deadline_breached",
     "超时 {{case_number}}", "案件 {{case_number}}（{{subject}}）{{deadline}}超时：应于 {{due}} 完成，责任人 {{owner}}。",
     "Overdue {{case_number}}", "Case {{case_number}} ({{subject}}): the {{deadline}} limit passed at {{due}}; responsible: {{owner}}."},
    {"emergency.alerted",
     "【紧急】{{case_number}}", "【紧急】{{message}} 案件 {{case_number}}：{{subject}}，地点 {{room}}。请立即确认。",
     "EMERGENCY {{case_number}}", "EMERGENCY: {{message}} Case {{case_number}}: {{subject}}, at {{room}}. Acknowledge now."},
    {"case.resolved",
     "请回访 {{case_number}}", "案件 {{case_number}}（{{subject}}）已办结：{{result}}。请在两天内回访客户 {{customer_name}} {{customer_phone}}。",
     "Call back {{case_number}}", "Case {{case_number}} ({{subject}}) is resolved: {{result}}. Please call the customer back within two days: {{customer_name}} {{customer_phone}}."},
    {"case.callback",
     "回访 {{case_number}}", "案件 {{case_number}} 已回访：{{satisfaction}}。",
     "Callback {{case_number}}", "Case {{case_number}} was called back: {{satisfaction}}."},
    {"case.reopened",
     "重新打开 {{case_number}}", "案件 {{case_number}}（{{subject}}）重新打开：{{reason}}",
     "Reopened {{case_number}}", "Case {{case_number}} ({{subject}}) is reopened: {{reason}}"},
    {"case.closed_unresolvable",
     "无法解决 {{case_number}}", "案件 {{case_number}}（{{subject}}）由 {{actor}} 以无法解决关闭：{{reason}}",
     "Closed as unresolvable {{case_number}}", "Case {{case_number}} ({{subject}}) was closed as unresolvable by {{actor}}: {{reason}}"},
    {"case.leader_callback_requested",
     "客户请求领导回电 {{case_number}}", "客户请求领导回电：案件 {{case_number}}（{{subject}}），{{reason}}。回电号码：{{customer_phone}}。",
     "Leader call-back requested {{case_number}}", "A customer asks a leader to call back: case {{case_number}} ({{subject}}), {{reason}}. Number: {{customer_phone}}."},
    {"review.requested",
     "请完成{{message}}", "{{site}}：请完成{{message}}。",
     "Please complete the {{message}}", "{{site}}: please complete the {{message}}."},
    {"violation.recorded",
     "违规记录 {{case_number}}", "案件 {{case_number}}：{{reason}}（责任人 {{owner}}）。",
     "Violation {{case_number}}", "Case {{case_number}}: {{reason}} (responsible: {{owner}})."},
};
// clang-format on

static const struct wording fallback = {
    NULL,
    "{{event}} {{case_number}}",
    "{{event}}：{{case_number}} {{subject}}",
    "{{event}} {{case_number}}",
    "{{event}}: {{case_number}} {{subject}}",
};

void ntf_words(const struct ntf_site *s, const char *event_type, enum ntf_kind kind,
               const char *locale, const char **subject, const char **body)
{
    const char *kname = ntf_kind_names[kind];
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < s->ntemplates; i++) {
            const struct ntf_template *t = &s->templates[i];
            if (!t->customer && strcmp(t->event_type, event_type) == 0 &&
                strcmp(t->locale, locale) == 0 && strcmp(t->kind, pass == 0 ? kname : "any") == 0) {
                *subject = t->subject != NULL ? t->subject : "";
                *body = t->body;
                return;
            }
        }
    const struct wording *w = &fallback;
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        if (strcmp(builtin[i].event, event_type) == 0)
            w = &builtin[i];
    bool en = strcmp(locale, "en") == 0;
    *subject = en ? w->en_subject : w->zh_subject;
    *body = en ? w->en_body : w->zh_body;
}

/* What a customer who consented hears: a receipt, progress, the result and a survey. */
// clang-format off
static const struct wording for_customer[] = {
    {"case.registered",
     "您的诉求已登记 {{case_number}}", "{{customer_name}}您好：您反映的“{{subject}}”已登记，编号 {{case_number}}，我们将尽快处理并回复您。",
     "Your request {{case_number}}", "Dear {{customer_name}}, your request \"{{subject}}\" is registered as {{case_number}}; we will handle it and reply to you."},
    {"case.progress",
     "处理进展 {{case_number}}", "您的诉求 {{case_number}}（{{subject}}）正在处理：{{reason}}",
     "Progress on {{case_number}}", "Your request {{case_number}} ({{subject}}) is in hand: {{reason}}"},
    {"case.resolved",
     "处理结果 {{case_number}}", "您的诉求 {{case_number}}（{{subject}}）已办结：{{result}}。请您评价本次服务：回复 1 满意，2 基本满意，3 不满意。",
     "Result of {{case_number}}", "Your request {{case_number}} ({{subject}}) is resolved: {{result}}. How did we do? Reply 1 satisfied, 2 fairly satisfied, 3 unsatisfied."},
    {"case.resolved_on_spot",
     "处理结果 {{case_number}}", "您的诉求 {{case_number}}（{{subject}}）已当场办结：{{result}}。请您评价本次服务：回复 1 满意，2 基本满意，3 不满意。",
     "Result of {{case_number}}", "Your request {{case_number}} ({{subject}}) was resolved at once: {{result}}. How did we do? Reply 1 satisfied, 2 fairly satisfied, 3 unsatisfied."},
};
// clang-format on

bool ntf_customer_words(const struct ntf_site *s, const char *event_type, enum ntf_kind kind,
                        const char *locale, const char **subject, const char **body)
{
    const struct wording *w = NULL;
    for (size_t i = 0; i < sizeof(for_customer) / sizeof(for_customer[0]); i++)
        if (strcmp(for_customer[i].event, event_type) == 0)
            w = &for_customer[i];
    if (w == NULL)
        return false;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < s->ntemplates; i++) {
            const struct ntf_template *t = &s->templates[i];
            if (t->customer && strcmp(t->event_type, event_type) == 0 &&
                strcmp(t->locale, locale) == 0 &&
                strcmp(t->kind, pass == 0 ? ntf_kind_names[kind] : "any") == 0) {
                *subject = t->subject != NULL ? t->subject : "";
                *body = t->body;
                return true;
            }
        }
    bool en = strcmp(locale, "en") == 0;
    *subject = en ? w->en_subject : w->zh_subject;
    *body = en ? w->en_body : w->zh_body;
    return true;
}

/* ---- values --------------------------------------------------------------------------- */

struct zh {
    const char *en, *zh;
};

static const struct zh zh_words[] = {
    {"consultation", "咨询"},
    {"complaint", "投诉"},
    {"help", "求助"},
    {"suggestion", "建议"},
    {"repair", "报修"},
    {"business", "业务办理"},
    {"report", "举报"},
    {"emergency", "紧急"},
    {"normal", "一般"},
    {"urgent", "加急"},
    {"supervisor", "客服主管"},
    {"manager", "经理"},
    {"leader", "领导"},
    {"handoff", "转办"},
    {"first_contact", "首次联系"},
    {"answer", "答复"},
    {"resolve", "办结"},
    {"callback", "回访"},
    {"emergency_ack", "紧急确认"},
    {"appoint", "指派经办人"},
    {"satisfied", "满意"},
    {"basically_satisfied", "基本满意"},
    {"unsatisfied", "不满意"},
    {"unreachable", "无法联系"},
    {"daily", "每日接待记录审核"},
    {"weekly", "上周接待情况周例会审核"},
};

static const char *word(const char *en, bool zh)
{
    if (!zh || en == NULL)
        return en;
    for (size_t i = 0; i < sizeof(zh_words) / sizeof(zh_words[0]); i++)
        if (strcmp(zh_words[i].en, en) == 0)
            return zh_words[i].zh;
    return en;
}

/* "DEADLINE_KIND_FIRST_CONTACT" -> "first_contact", into out. */
static const char *enum_word(const ProtobufCEnumDescriptor *d, int v, size_t prefix, char *out,
                             size_t outlen)
{
    const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(d, v);
    if (e == NULL || strlen(e->name) <= prefix || outlen == 0)
        return NULL;
    size_t i = 0;
    for (const char *p = e->name + prefix; *p != '\0' && i + 1 < outlen; p++)
        out[i++] = (char)tolower((unsigned char)*p);
    out[i] = '\0';
    return out;
}

void ntf_local_time(const struct ntf_site *s, int64_t t_us, char *out, size_t outlen)
{
    int64_t secs = t_us / 1000000;
    if (s->cal.tz != NULL)
        secs += cal_tz_offset(s->cal.tz, secs);
    int32_t days = (int32_t)(secs >= 0 ? secs / 86400 : (secs - 86399) / 86400);
    int64_t rem = secs - (int64_t)days * 86400;
    int y, m, d;
    cal_civil_from_days(days, &y, &m, &d);
    snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d", y, m, d, (int)(rem / 3600),
             (int)(rem / 60 % 60));
}

static const char *person(const struct ntf_site *s, const char *code)
{
    if (code == NULL || code[0] == '\0')
        return NULL;
    const struct ntf_staff *p = ntf_staff_find(s, code);
    return p != NULL ? p->name : code;
}

static const char *dept_name(const struct ntf_site *s, const char *code)
{
    if (code == NULL || code[0] == '\0')
        return NULL;
    const struct ntf_dept *d = ntf_dept_find(s, code);
    return d != NULL ? d->name : code;
}

/* Whether a recipient works the case and so may see the customer's details in full. */
static bool works_case(const struct ntf_staff *r, const struct ntf_case *c,
                       const Shouwen__V1__Envelope *env)
{
    if (r == NULL)
        return false;
    if (strcmp(r->code, c->owner) == 0 || strcmp(r->code, c->first_responder) == 0)
        return true;
    if (strcmp(r->role, "supervisor") == 0 || strcmp(r->role, "receptionist") == 0)
        return true; /* the front desk keeps the reception log */
    if (strcmp(r->role, "department_head") == 0 && c->dept[0] != '\0' &&
        strcmp(r->dept, c->dept) == 0)
        return true;
    if (env->event_case == EV(ACCEPTED) && env->accepted != NULL &&
        strcmp(env->accepted->handler, r->code) == 0)
        return true;
    if (env->event_case == EV(TRANSFERRED) && env->transferred != NULL &&
        env->transferred->handoff != NULL &&
        strcmp(env->transferred->handoff->to_department, r->dept) == 0 &&
        strcmp(r->role, "department_head") == 0)
        return true;
    if (env->event_case == EV(LEADER_CALLBACK_REQUESTED) && env->leader_callback_requested &&
        strcmp(env->leader_callback_requested->leader, r->code) == 0)
        return true;
    return false;
}

sw_err ntf_vars(const struct ntf_site *s, const Shouwen__V1__Envelope *env,
                const struct ntf_case *c, const struct ntf_staff *recipient, bool zh,
                char scratch[][160], const char *vals[NTF_VARS])
{
    memset(vals, 0, sizeof(const char *) * NTF_VARS);
    vals[NTF_SITE] = s->code;
    vals[NTF_EVENT] = env->type;
    if (c != NULL) {
        vals[NTF_CASE_NUMBER] = c->number;
        vals[NTF_SUBJECT] = c->subject;
        vals[NTF_CASE_TYPE] = word(c->type, zh);
        vals[NTF_URGENCY] = word(c->urgency, zh);
        vals[NTF_STATUS] = c->status;
        vals[NTF_DEPARTMENT] = dept_name(s, c->dept);
        vals[NTF_OWNER] = person(s, c->owner);
        vals[NTF_FIRST_RESPONDER] = person(s, c->first_responder);
        vals[NTF_ROOM] = c->room;
        if (works_case(recipient, c, env)) {
            vals[NTF_CUSTOMER_NAME] = c->customer_name;
            vals[NTF_CUSTOMER_PHONE] = c->customer_phone;
        } else {
            ntf_mask_name(c->customer_name, scratch[0], 160);
            ntf_mask_phone(c->customer_phone, scratch[1], 160);
            vals[NTF_CUSTOMER_NAME] = scratch[0];
            vals[NTF_CUSTOMER_PHONE] = scratch[1];
        }
    }
    vals[NTF_RECIPIENT] = recipient != NULL ? recipient->name : NULL;
    if (env->actor != NULL)
        vals[NTF_ACTOR] = person(s, env->actor->staff_code);
    ntf_local_time(s, env->time, scratch[2], 160);
    vals[NTF_TIME] = scratch[2];
    const Shouwen__V1__Handoff *h = NULL;
    switch (env->event_case) {
    case EV(ASSIGNED):
        h = env->assigned ? env->assigned->handoff : NULL;
        break;
    case EV(TRANSFERRED):
        h = env->transferred ? env->transferred->handoff : NULL;
        break;
    case EV(RETURNED):
        h = env->returned ? env->returned->handoff : NULL;
        break;
    case EV(FORWARDED):
        h = env->forwarded ? env->forwarded->handoff : NULL;
        break;
    case EV(ACCEPTED):
        if (env->accepted != NULL) {
            vals[NTF_HANDLER] = person(s, env->accepted->handler);
            vals[NTF_DEPARTMENT] = dept_name(s, env->accepted->department);
            vals[NTF_REASON] = env->accepted->note;
        }
        break;
    case EV(PROGRESS):
        if (env->progress != NULL)
            vals[NTF_REASON] = env->progress->note;
        break;
    case EV(RESOLVED):
        if (env->resolved != NULL)
            vals[NTF_RESULT] = env->resolved->result;
        break;
    case EV(RESOLVED_ON_SPOT):
        if (env->resolved_on_spot != NULL)
            vals[NTF_RESULT] = env->resolved_on_spot->result;
        break;
    case EV(CALLBACK):
        if (env->callback != NULL)
            vals[NTF_SATISFACTION] = word(wf_satisfaction_name(env->callback->satisfaction), zh);
        break;
    case EV(REOPENED):
        if (env->reopened != NULL)
            vals[NTF_REASON] = env->reopened->reason;
        break;
    case EV(ESCALATED):
        if (env->escalated != NULL) {
            vals[NTF_LEVEL] = word(wf_escalation_name(env->escalated->level), zh);
            vals[NTF_REASON] = env->escalated->reason;
            if (env->escalated->to_staff[0] != '\0')
                vals[NTF_OWNER] = person(s, env->escalated->to_staff);
        }
        break;
    case EV(LEAD_DESIGNATED):
        if (env->lead_designated != NULL) {
            vals[NTF_DEPARTMENT] = dept_name(s, env->lead_designated->lead_department);
            vals[NTF_REASON] = env->lead_designated->reason;
        }
        break;
    case EV(CLOSED_UNRESOLVABLE):
        if (env->closed_unresolvable != NULL)
            vals[NTF_REASON] = env->closed_unresolvable->reason;
        break;
    case EV(REFERRED_OUT):
        if (env->referred_out != NULL)
            vals[NTF_REASON] = env->referred_out->guidance;
        break;
    case EV(WAITING):
        if (env->waiting != NULL)
            vals[NTF_REASON] = env->waiting->reason;
        break;
    case EV(LEADER_CALLBACK_REQUESTED):
        if (env->leader_callback_requested != NULL) {
            const Shouwen__V1__CaseLeaderCallbackRequested *l = env->leader_callback_requested;
            vals[NTF_REASON] = l->reason;
            /* the customer's number is for the leader only */
            if (recipient != NULL && strcmp(recipient->code, l->leader) == 0)
                vals[NTF_CUSTOMER_PHONE] =
                    l->callback_phone[0] ? l->callback_phone : vals[NTF_CUSTOMER_PHONE];
        }
        break;
    case EV(DEADLINE_BREACHED):
        if (env->deadline_breached != NULL) {
            const Shouwen__V1__CaseDeadlineBreached *b = env->deadline_breached;
            vals[NTF_DEADLINE] =
                word(enum_word(&shouwen__v1__deadline_kind__descriptor, (int)b->kind,
                               strlen("DEADLINE_KIND_"), scratch[3], 160),
                     zh);
            ntf_local_time(s, b->due_at, scratch[4], 160);
            vals[NTF_DUE] = scratch[4];
            if (b->responsible_staff[0] != '\0')
                vals[NTF_OWNER] = person(s, b->responsible_staff);
        }
        break;
    case EV(VIOLATION_RECORDED):
        if (env->violation_recorded != NULL) {
            vals[NTF_REASON] = env->violation_recorded->detail;
            if (env->violation_recorded->staff[0] != '\0')
                vals[NTF_OWNER] = person(s, env->violation_recorded->staff);
        }
        break;
    case EV(EMERGENCY_ALERTED):
        if (env->emergency_alerted != NULL) {
            vals[NTF_MESSAGE] = env->emergency_alerted->message;
            vals[NTF_LEVEL] = word(wf_escalation_name(env->emergency_alerted->level), zh);
        }
        break;
    case EV(REVIEW_REQUESTED):
        if (env->review_requested != NULL)
            vals[NTF_MESSAGE] = word(enum_word(&shouwen__v1__review_kind__descriptor,
                                               (int)env->review_requested->kind,
                                               strlen("REVIEW_KIND_"), scratch[5], 160),
                                     zh);
        break;
    default:
        break;
    }
    if (h != NULL) {
        vals[NTF_FROM_DEPARTMENT] = dept_name(s, h->from_department);
        if (h->to_department[0] != '\0')
            vals[NTF_DEPARTMENT] = dept_name(s, h->to_department);
        if (h->to_staff[0] != '\0')
            vals[NTF_OWNER] = person(s, h->to_staff);
        vals[NTF_REASON] = h->reason;
    }
    return SW_OK;
}
