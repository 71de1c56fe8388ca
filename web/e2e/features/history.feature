Feature: History in the dashboard
  Past ranges come from rollups and show a min-max band around the average, a drag across a
  chart zooms into finer data, an outage shows as a gap rather than a line across it, and a
  link opens the same view.

  Scenario: A day of history shows 1-minute data with a min-max band
    Given a tenant exists and I am signed in to its dashboard
    And a day of history of "e2e.day" from agent "e2e-day"
    When I choose the range "24 h"
    Then the "e2e.day" chart shows "1m" data with a min-max band within 15000 ms
    And the URL holds "range=24h"
    When I reload the page
    Then the range "24 h" is chosen
    And the "e2e.day" chart shows "1m" data with a min-max band within 15000 ms

  Scenario: Dragging across a spike zooms to that span with finer data, and back to live
    Given a tenant exists and I am signed in to its dashboard
    And a day of history of "e2e.spike" from agent "e2e-spike" with a spike 3 hours ago
    When I choose the range "24 h"
    And I expand the "e2e.spike" chart
    Then the "e2e.spike" chart shows "1m" data with a min-max band within 15000 ms
    When I drag across the spike on the "e2e.spike" chart
    Then the "e2e.spike" chart zooms to the span dragged across, with "raw" data, within 10000 ms
    When I go back to live
    Then the "e2e.spike" chart shows the live window without having gone blank within 10000 ms

  Scenario: An agent that stops for two minutes leaves a gap
    Given a tenant exists and I am signed in to its dashboard
    When the agent "e2e-gappy" reports "e2e.gappy" every 5 s for 10 minutes but stops for two of them
    Then the "e2e.gappy" chart shows a gap where the agent stopped within 5000 ms

  Scenario: A custom range shows exactly the span entered
    Given a tenant exists and I am signed in to its dashboard
    And a day of history of "e2e.custom" from agent "e2e-custom"
    When I choose the range "Custom"
    And I enter a custom range from 6 hours ago to 5 hours ago
    Then the "e2e.custom" chart shows the span entered with "raw" data within 10000 ms
    And the URL holds "from="
