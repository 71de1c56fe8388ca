Feature: Live dashboard
  The dashboard shows a tenant's metrics live, keeps working when Server-Sent Events do not,
  and never shows one tenant's data to another.

  Scenario: A pushed metric appears on the live chart within 500 ms
    Given a tenant exists and I am signed in to its dashboard
    When I POST the metric "e2e.latency" with value 42.5
    Then the value 42.5 is on the "e2e.latency" chart within 500 ms

  Scenario: With EventSource blocked the fallback still delivers the point
    Given the browser's event streams are blocked
    And a tenant exists and I am signed in to its dashboard
    Then the live status shows polling within 10000 ms
    When I POST the metric "e2e.fallback" with value 7.25
    Then the value 7.25 is on the "e2e.fallback" chart within 1500 ms

  Scenario: A metric with a single point draws that point beside its value
    Given a tenant exists and I am signed in to its dashboard
    When I POST the metric "e2e.single_point" with value 7
    Then the value 7 is on the "e2e.single_point" chart within 2000 ms
    And the "e2e.single_point" chart draws its one point as a dot

  Scenario: A tenant user cannot see another tenant's page or stream
    Given I am signed in as the user of tenant "other"
    When I open the dashboard of tenant "demo"
    Then I am told I have no access to tenant "demo"
    And the stream of tenant "demo" refuses my session with 403

  Scenario: A running agent's host metrics show up live
    Given a tenant exists and I am signed in to its dashboard
    And an agent "e2e-host-agent" is running
    When it publishes
    Then the "cpu.usage_percent" chart shows agent "e2e-host-agent" within 10000 ms

  Scenario: The agents list shows a running agent online, and clicking it filters the charts to it
    Given a tenant exists and I am signed in to its dashboard
    And an agent "e2e-list-agent" is running
    When I POST the metric "cpu.usage_percent" with value 1
    Then the "cpu.usage_percent" chart shows agent "e2e-list-agent" within 10000 ms
    And the "cpu.usage_percent" chart shows agent "e2e-host" within 2000 ms
    When I open the "Overview" screen
    Then the agent "e2e-list-agent" is listed as "online" within 10000 ms
    When I click the agent "e2e-list-agent"
    Then the "cpu.usage_percent" chart shows only agent "e2e-list-agent" within 10000 ms

  # Seven screens, each checked at two sizes.
  @timeout:90000
  Scenario: The dashboard meets WCAG 2.2 A and AA on every screen, at desktop and phone sizes
    Given a tenant exists and I am signed in to its dashboard
    When I POST the metric "e2e.a11y" with value 3
    Then the value 3 is on the "e2e.a11y" chart within 2000 ms
    And the "tenant" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I choose the range "Custom"
    Then the "custom range" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I choose the range "24 h"
    Then the URL holds "range=24h"
    And the "history" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I expand the "e2e.a11y" chart
    Then the "expanded chart" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I close the expanded chart
    And I go back to live
    And I open the "Overview" screen
    Then the "overview" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I open the "Tokens" screen
    Then the "tokens" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I sign out
    Then the "sign-in" screen has no WCAG 2.2 AA violations at desktop and phone sizes
