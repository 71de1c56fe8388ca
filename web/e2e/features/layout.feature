Feature: Widgets the tenant arranges
  CPU, memory and disk first and every custom metric automatically; widgets can be pinned,
  hidden, moved, resized and drawn as a line, a value with a sparkline or a gauge, and the
  layout is saved on the server, so it follows the user to another browser.

  Scenario: A hidden widget stays hidden in a new browser
    Given a tenant exists and I am signed in to its dashboard
    When I POST the metric "e2e.layout_hidden" with value 1
    And I POST the metric "e2e.layout_stat" with value 2
    Then the value 2 is on the "e2e.layout_stat" chart within 2000 ms
    When I arrange the widgets
    And I hide the "e2e.layout_hidden" widget
    And I show "e2e.layout_stat" as "value and sparkline"
    And I make "e2e.layout_stat" "large"
    Then the "e2e.layout_hidden" widget is hidden
    And the "e2e.layout_stat" widget is drawn as "stat" in size "large"
    And the value 2 is on the "e2e.layout_stat" chart within 2000 ms
    And the "arranging widgets" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I open the dashboard of tenant "demo" in a new browser, signed in as demo
    Then in the new browser the "e2e.layout_hidden" widget is hidden
    And in the new browser the "e2e.layout_stat" widget is drawn as "stat"

  Scenario: One truth about live or paused, and the switch only where it acts
    Given a tenant exists and I am signed in to its dashboard
    When I POST the metric "e2e.paused" with value 4
    Then the value 4 is on the "e2e.paused" chart within 2000 ms
    When I pause live updates in the header
    Then the header, the badge and every card say paused
    When I choose the range "24 h"
    Then the header has no live switch
    When I open the "Tokens" screen
    Then the header has no live switch
