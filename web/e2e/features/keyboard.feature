Feature: The dashboard with the keyboard alone
  Every page change moves the focus to the page's heading, a skip link leads past the header,
  dialogs hold the focus, close on Escape and give the focus back, and every page has a title
  of its own.

  @timeout:90000
  Scenario: Sign in, open a tenant, change the range, expand a chart, and create and revoke a token without the mouse
    Given the agent "e2e-kbd-host" reports "e2e.kbd_chart" 3
    When I sign in as "demo" with the keyboard
    Then the page is titled "Overview · microdash"
    When I tab to the link "Skip to content" and press Enter
    Then the heading "Overview" has the focus
    When I tab to the link "Demo" and press Enter
    Then the heading "demo" has the focus
    And the page is titled "demo · microdash"
    When I tab to the button "24 h" and press Enter
    Then the URL holds "range=24h"
    And the range "24 h" is chosen
    When I tab to the button "Expand e2e.kbd_chart" and press Enter
    Then the dialog "e2e.kbd_chart" is open with the focus inside
    When the focus leaves the dialog
    And I press "Escape"
    Then no dialog is open and the focus is on the button "Expand e2e.kbd_chart"
    When I tab to the link "Tokens" and press Enter
    Then the heading "API tokens" has the focus
    When I tab to the "Name" field and type "e2e kbd token"
    And I tab to the button "Create token" and press Enter
    Then a new token is shown within 5000 ms
    When I tab to the revoke button of the new token and press Enter, confirming
    Then the new token is listed as revoked within 5000 ms
    And every element I tabbed to showed a visible focus indicator
    And the "tokens with a revoked token" screen has no WCAG 2.2 AA violations at desktop and phone sizes
