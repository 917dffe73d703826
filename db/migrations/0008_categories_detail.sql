-- Second-level categories, so the category tree is a tree: a child's code is its parent's
-- code and two digits. Admins add more at the desk (casework/categories.py); codes are
-- never deleted, only deactivated. gbt_code (GB/T 39666) is left for the admin to map.
INSERT INTO categories (code, parent, name, sort) VALUES
    ('0201', '02', '市政建设', 1),
    ('0202', '02', '城市管理', 2),
    ('0203', '02', '环境保护', 3),
    ('0204', '02', '营商环境', 4),
    ('0301', '03', '社会保障', 1),
    ('0302', '03', '住房公积金', 2),
    ('0303', '03', '户籍与证件办理', 3),
    ('0304', '03', '不动产登记', 4),
    ('0401', '04', '供水', 1),
    ('0402', '04', '供电', 2),
    ('0403', '04', '燃气', 3),
    ('0404', '04', '供暖', 4),
    ('0405', '04', '交通出行', 5),
    ('0406', '04', '突发事件', 6),
    ('0407', '04', '物业管理', 7),
    ('0501', '05', '劳动纠纷与欠薪', 1),
    ('0502', '05', '消费维权', 2),
    ('0503', '05', '邻里纠纷', 3),
    ('9101', '91', '新闻线索', 1),
    ('9201', '92', '停水停电信息', 1),
    ('9202', '92', '办事指南', 2)
ON CONFLICT (code) DO NOTHING;
