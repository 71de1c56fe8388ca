DROP TABLE dashboard_layouts;
