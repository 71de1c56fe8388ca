Feature: Onboarding in the browser
  An admin creates tenants and users without the command line; a new token is shown once with
  a copy button and ready-to-run snippets; an empty tenant's page says how to send the first
  metric and turns into charts the moment it arrives.

  Scenario: An admin creates a tenant and a token, pushes a metric with the shown curl, and sees the chart appear
    Given I am signed in as an admin
    When I open the "Admin" screen
    Then the page is titled "Tenants and users · microdash"
    When I create the tenant "e2e-onboard" named "E2E Onboarding"
    Then the tenant "e2e-onboard" is listed
    When I create the tenant "e2e-onboard" again
    Then the form says "already exists"
    When I create the user "e2e-onboarder" with password "short" in tenant "e2e-onboard"
    Then the "Password" field says "at least 10 characters"
    When I create the user "e2e-onboarder" with password "a long enough password" in tenant "e2e-onboard"
    Then the user "e2e-onboarder" is listed in tenant "e2e-onboard"
    And the "admin" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I follow the link "create a token for e2e-onboard"
    And I create a token named "first"
    Then the new token is shown once with a copy button and a curl snippet
    And the "new token" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I open the dashboard of tenant "e2e-onboard"
    Then the page says how to send the first metric
    And the "empty tenant" screen has no WCAG 2.2 AA violations at desktop and phone sizes
    When I run the curl snippet
    Then the value 42 is on the "cpu.usage_percent" chart within 5000 ms
    And the page no longer says how to send the first metric
