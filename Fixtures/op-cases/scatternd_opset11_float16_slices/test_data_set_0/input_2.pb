
BupdatesJF½¼T8!5Ë5'=