"""考核: the monthly measures towns are judged by (签收率, 按时办结率, 满意率, 回访率, 重办率,
超期件数) per node, tier, department and person, their rankings and the 最美邻长 shortlist."""
