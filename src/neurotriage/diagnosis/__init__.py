"""From MRI to referral: segment -> locate -> cross-check -> refer -> report, stored in one transaction."""
