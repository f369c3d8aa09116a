-- The demo site SH01 (a residential compound in Shanghai): departments,
-- staff of every role, what each department covers.  Loaded by
-- deploy/demo.sh (make run); safe to load again: nothing that exists is
-- changed.  Credentials are not here: demo.sh makes them fresh per
-- installation and keeps only their hashes in the database.
BEGIN;
INSERT INTO core.sites (code, name, time_zone) VALUES ('SH01', '示范小区 Demo Residences, Shanghai', 'Asia/Shanghai')
ON CONFLICT (code) DO NOTHING;

INSERT INTO core.departments (site_id, code, name, is_qa, is_front_desk)
SELECT s.id, d.code, d.name, d.is_qa, d.front FROM core.sites s,
(VALUES ('front-desk', '客服中心 Customer service centre', false, true),
        ('engineering', '工程维修部 Engineering and repairs', false, false),
        ('security', '秩序维护部 Security', false, false),
        ('cleaning', '保洁部 Cleaning', false, false),
        ('finance', '财务部 Finance', false, false),
        ('qa', '质检部 Quality inspection', true, false),
        ('management', '经理办公室 Manager''s office', false, false)) AS d(code, name, is_qa, front)
WHERE s.code = 'SH01'
ON CONFLICT (site_id, code) DO NOTHING;

INSERT INTO core.department_scopes (site_id, department_id, case_type)
SELECT d.site_id, d.id, x.t FROM core.departments d JOIN core.sites s ON s.id = d.site_id,
(VALUES ('front-desk', 'consultation'), ('front-desk', 'suggestion'), ('front-desk', 'complaint'),
        ('engineering', 'repair'), ('security', 'emergency'), ('security', 'help'),
        ('cleaning', 'help'), ('finance', 'business'), ('qa', 'report')) AS x(dept, t)
WHERE s.code = 'SH01' AND d.code = x.dept
ON CONFLICT ON CONSTRAINT department_scopes_unique DO NOTHING;

-- staff: code, name, role, department, supervisor (by code), private contact
INSERT INTO core.staff (site_id, code, name, role, department_id, phone, contact_private)
SELECT s.id, p.code, p.name, p.role, d.id, p.phone, p.private FROM core.sites s
CROSS JOIN (VALUES
    ('zhao.gm', '赵总 Zhao (general manager)', 'leader', 'management', '13900000001', true),
    ('qian.mgr', '钱经理 Qian (manager)', 'manager', 'management', '13900000002', false),
    ('sun.sup', '孙主管 Sun (customer-relations supervisor)', 'supervisor', 'front-desk', '13900000003', false),
    ('li.desk', '李前台 Li (receptionist)', 'receptionist', 'front-desk', '13900000004', false),
    ('zhou.eng', '周主管 Zhou (head of engineering)', 'department_head', 'engineering', '13900000005', false),
    ('wu.tech', '吴师傅 Wu (technician)', 'handler', 'engineering', '13900000006', false),
    ('zheng.sec', '郑主管 Zheng (head of security)', 'department_head', 'security', '13900000007', false),
    ('wang.guard', '王保安 Wang (guard)', 'staff', 'security', '13900000008', false),
    ('feng.clean', '冯主管 Feng (head of cleaning)', 'department_head', 'cleaning', '13900000009', false),
    ('chen.cleaner', '陈阿姨 Chen (cleaner)', 'staff', 'cleaning', '13900000010', false),
    ('chu.fin', '褚主管 Chu (head of finance)', 'department_head', 'finance', '13900000011', false),
    ('wei.qa', '卫质检 Wei (QA)', 'qa', 'qa', '13900000012', false)
) AS p(code, name, role, dept, phone, private)
JOIN core.departments d ON d.site_id = s.id AND d.code = p.dept
WHERE s.code = 'SH01'
ON CONFLICT (site_id, code) DO NOTHING;

UPDATE core.staff st SET supervisor_id = boss.id
FROM core.sites s, (VALUES ('qian.mgr', 'zhao.gm'), ('sun.sup', 'qian.mgr'), ('li.desk', 'sun.sup'),
        ('zhou.eng', 'qian.mgr'), ('wu.tech', 'zhou.eng'), ('zheng.sec', 'qian.mgr'),
        ('wang.guard', 'zheng.sec'), ('feng.clean', 'qian.mgr'), ('chen.cleaner', 'feng.clean'),
        ('chu.fin', 'qian.mgr'), ('wei.qa', 'qian.mgr')) AS x(who, sup),
     core.staff boss
WHERE s.code = 'SH01' AND st.site_id = s.id AND st.code = x.who AND boss.site_id = s.id
  AND boss.code = x.sup AND st.supervisor_id IS NULL;

-- routing rules (PUT /v1/sites/SH01/routing/rules replaces them); what no
-- rule matches goes to the customer-relations supervisor, sun.sup
INSERT INTO routing.rules (site_id, name, priority, case_types, urgencies, keywords,
                           location_prefix, from_minute, to_minute, target_department_id,
                           assisting_department_ids)
SELECT s.id, r.name, r.priority, r.types, r.urgencies, r.keywords, r.loc, r.from_m, r.to_m, d.id,
       ARRAY(SELECT a.id FROM core.departments a WHERE a.site_id = s.id AND a.code = ANY (r.assist))
FROM core.sites s
CROSS JOIN (VALUES
    ('emergencies: security leads, engineering assists', 5, '{}'::text[], '{emergency}'::text[],
     '{}'::text[], NULL, NULL::int, NULL::int, 'security', '{engineering}'::text[]),
    ('water and pipes', 10, '{}', '{}', '{漏水,水管,渗水,water leak}', NULL, NULL, NULL, 'engineering', '{}'),
    ('noise and disturbance', 20, '{}', '{}', '{噪音,扰民,noise}', NULL, NULL, NULL, 'security', '{}'),
    ('fees and invoices', 30, '{consultation,complaint}', '{}', '{物业费,收费,发票}', NULL, NULL, NULL, 'finance', '{}'),
    ('rubbish and cleaning', 40, '{}', '{}', '{垃圾,保洁,清扫}', NULL, NULL, NULL, 'cleaning', '{}'),
    ('repairs', 50, '{repair}', '{}', '{}', NULL, NULL, NULL, 'engineering', '{}')
) AS r(name, priority, types, urgencies, keywords, loc, from_m, to_m, dept, assist)
JOIN core.departments d ON d.site_id = s.id AND d.code = r.dept
WHERE s.code = 'SH01'
ON CONFLICT (site_id, priority) WHERE active DO NOTHING;

-- What a customer must bring or do, per request type, told in one go
-- (一次性告知): the console shows the chosen type's list at registration.
INSERT INTO core.checklists (site_id, case_type, items)
SELECT s.id, c.type, c.items FROM core.sites s,
(VALUES ('business', ARRAY['业主身份证原件及复印件 ID card of the owner (original and a copy)',
                           '房产证或购房合同复印件 Property certificate or purchase contract (copy)',
                           '委托办理的，另带委托书及受托人身份证 If acting for the owner: a signed authorisation and your own ID card']),
        ('repair', ARRAY['方便上门的时间段 A time when the technician may come in',
                         '故障部位照片（如有） A photo of the fault, if you have one',
                         '属有偿维修的，按价目表付费 Paid repairs are charged by the price list']),
        ('complaint', ARRAY['事发时间、地点和经过 When and where it happened, and what happened',
                            '照片、视频等材料（如有） Photos or videos, if any',
                            '方便回访的电话和时间 A phone number and time for our callback']),
        ('report', ARRAY['被举报事项的时间、地点 When and where it happened',
                         '可匿名；如需回复请留联系方式 You may stay anonymous; leave a contact to hear back'])
) AS c(type, items)
WHERE s.code = 'SH01'
ON CONFLICT (site_id, case_type) DO NOTHING;
COMMIT;
