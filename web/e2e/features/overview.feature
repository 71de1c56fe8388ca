Feature: The fleet overview
  An operator triages at a glance: per tenant a row per host with CPU, memory and disk bars and
  values, network, uptime, when it last reported and its status in words, searchable and
  sortable, live, across the whole width of a large screen.

  @timeout:60000
  Scenario: A host's bars show its latest values, and a host that stops turns stale then offline
    Given a tenant exists and I am signed in to its dashboard
    When the host "e2e-fleet-1" reports CPU 37.5, memory 61 and disk 82 on "/data" every second
    And the host "e2e-fleet-2" reports CPU 88, memory 20 and disk 10 on "/" every second
    And I open the "Overview" screen
    Then the host "e2e-fleet-1" shows CPU 37.5, memory 61 and disk 82 within 5000 ms
    And the host "e2e-fleet-1" is "online" within 5000 ms
    And the overview uses the full width of a 1920 px screen
    When I sort the hosts by "CPU"
    Then the hosts of "demo" are sorted by CPU, highest first
    When I search the hosts for "fleet-2"
    Then only the host "e2e-fleet-2" is listed
    When I search the hosts for ""
    And the host "e2e-fleet-1" stops reporting
    Then the host "e2e-fleet-1" is "stale" within 10000 ms
    And the host "e2e-fleet-1" is "offline" within 20000 ms
    And the "overview with an offline host" screen has no WCAG 2.2 AA violations at desktop and phone sizes

  Scenario: A tenant user's overview is drawn from answers asked for while the app starts
    Given a tenant exists and I am signed in to its dashboard
    When the host "e2e-fleet-3" reports CPU 12, memory 34 and disk 56 on "/" every second
    And I load the overview afresh
    Then the host "e2e-fleet-3" is "online" within 5000 ms
    And the first load asked for the tenants and the fleet once each
